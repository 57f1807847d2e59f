"""File sources (txt, jsonl, parquet), the data cache key, and the training mixture's draw order."""

from __future__ import annotations

import itertools
import json
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litdata import StreamingDataset, optimize

from litplug.config import SourceConfig
from litplug.data.datamodule import EpochSeededMixture, tag_source
from litplug.data.prepare import prepare_split
from litplug.data.sources import read_examples
from litplug.errors import DataError

ROWS = [{"prompt": f"{a}+{b}=", "answer": str(a + b)} for a in range(20) for b in range(10)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict], row_group_size: int = 64) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
    return path


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_parquet_reads_the_same_examples_as_jsonl(tmp_path: Path, split: str) -> None:
    jsonl = SourceConfig(path=str(write_jsonl(tmp_path / "d.jsonl", ROWS)), validation_fraction=0.2)
    parquet = SourceConfig(path=str(write_parquet(tmp_path / "d.parquet", ROWS)), validation_fraction=0.2)
    expected = read_examples(jsonl, split, seed=0)
    assert expected and read_examples(parquet, split, seed=0) == expected


def test_parquet_text_column_and_custom_field_names(tmp_path: Path) -> None:
    docs = [{"body": f"document {i}", "id": i} for i in range(100)]
    spec = SourceConfig(path=str(write_parquet(tmp_path / "t.parquet", docs)), text_field="body",
                        validation_fraction=0.1)
    train, held = read_examples(spec, "train", 0), read_examples(spec, "validation", 0)
    assert len(train) + len(held) == 100 and all(ex.prompt == "" for ex in train)
    assert {ex.answer for ex in train + held} == {d["body"] for d in docs}


def test_directory_of_parquet_files_is_read_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "shards"
    folder.mkdir()
    write_parquet(folder / "b.parquet", ROWS[100:])
    write_parquet(folder / "a.parquet", ROWS[:100])
    whole = SourceConfig(path=str(write_parquet(tmp_path / "all.parquet", ROWS)), validation_fraction=0.2)
    split = SourceConfig(path=str(folder), validation_fraction=0.2)
    assert read_examples(split, "train", 0) == read_examples(whole, "train", 0)


def test_parquet_without_the_fields_names_file_row_and_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "bad.parquet", [{"question": "q", "reply": "r"}])
    with pytest.raises(DataError, match=r"bad.parquet' row 1 has neither 'text'.*\['question', 'reply'\]"):
        read_examples(SourceConfig(name="qa", path=str(path)), "train", 0)


def test_a_file_that_is_not_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_text("this is not parquet\n")
    with pytest.raises(DataError, match=r"data source 'broken'.*broken.parquet' is not a readable parquet file"):
        read_examples(SourceConfig(path=str(path)), "train", 0)


def test_unsupported_extension_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    with pytest.raises(DataError, match=r"data.csv' has an unsupported extension.*\.parquet"):
        read_examples(SourceConfig(path=str(path)), "train", 0)


def test_mixing_weight_is_not_part_of_the_cache_key(tmp_path: Path, tiny_tokenizer) -> None:
    args = dict(tokenizer=tiny_tokenizer, seq_len=32, seed=0, cache_root=tmp_path)
    base = SourceConfig(task="arithmetic", num_train=64)
    first = prepare_split(base, "train", **args)
    assert prepare_split(SourceConfig(task="arithmetic", num_train=64, weight=0.05), "train", **args) == first
    assert prepare_split(SourceConfig(task="arithmetic", num_train=65), "train", **args) != first


@pytest.fixture(scope="module")
def two_shard_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    dirs = []
    for i, n in enumerate((400, 400)):
        out = tmp_path_factory.mktemp(f"src{i}")
        optimize(fn=_row, inputs=list(range(n)), output_dir=str(out), chunk_bytes="1MB", num_workers=1,
                 verbose=False, mode="overwrite", start_method="fork")
        dirs.append(out)
    return dirs


def _row(i: int) -> dict[str, int]:
    return {"x": i}


def _draws(dirs: list[Path], epoch: int, n: int = 200) -> list[int]:
    datasets = [StreamingDataset(str(d), shuffle=False, transform=partial(tag_source, index=i))
                for i, d in enumerate(dirs)]
    mixture = EpochSeededMixture(datasets, seed=7, weights=[0.5, 0.5], iterate_over_all=False)
    mixture.set_epoch(epoch)
    return [item["source"] for item in itertools.islice(iter(mixture), n)]


def test_mixture_draws_differ_across_epochs_and_repeat_within_one(two_shard_dirs: list[Path]) -> None:
    first = _draws(two_shard_dirs, epoch=1)
    assert _draws(two_shard_dirs, epoch=1) == first  # a resumed epoch replays the same draws
    assert _draws(two_shard_dirs, epoch=2) != first
    assert 0.35 < sum(first) / len(first) < 0.65
