"""A truncated or corrupt weight file is bad input: exit 2 naming the file, nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from litplug.testing import cli as main


def merge(*args: Any) -> int:
    return main(["merge", "wise-ft", *map(str, args)])


def truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("role", ["--early", "--late"])
def test_truncated_safetensors_exits_2_naming_the_file(tmp_path: Path, model_pair: Any, role: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    bad = (early if role == "--early" else late) / "model.safetensors"
    truncate(bad)
    assert merge("--early", early, "--late", late, "--alpha", 0.5, "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert str(bad) in err and role in err and "truncated" in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_truncated_shard_of_a_sharded_model_is_named(tmp_path: Path, model_pair: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    # the late model as two shards (an index naming both), the second one cut short
    (late / "model.safetensors").rename(late / "model-00001-of-00002.safetensors")
    truncated = late / "model-00002-of-00002.safetensors"
    truncated.write_bytes((late / "model-00001-of-00002.safetensors").read_bytes()[:40])
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (late / "model.safetensors.index.json").write_text(json.dumps(index))
    assert merge("--early", early, "--late", late, "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and "Traceback" not in err, err
    assert not (tmp_path / "m").exists()


def test_weight_file_missing_from_the_index_is_named(tmp_path: Path, model_pair: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    (late / "model.safetensors").unlink()
    (late / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    assert merge("--early", early, "--late", late, "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert str(late / "model-1.safetensors") in err and "missing" in err, err
    assert not (tmp_path / "m").exists()
