"""Bad input found at start-up: `litplug config` and `litplug train` both exit 2 with one message
naming the key, file or source, and `train` writes nothing (no run directory, no mlflow.db)."""

from __future__ import annotations

import io
import json
import logging
import re
from contextlib import redirect_stderr
from pathlib import Path

import pytest
import torch

from litplug.cli import main
from litplug.config import SourceConfig, load_config
from litplug.data.datamodule import LitplugDataModule, source_specs
from litplug.data.sources import read_examples
from litplug.errors import DataError
from litplug.model import byte_tokenizer
from litplug.testing import TINY_OVERRIDES


def cli(verb: str, tmp_path: Path, *extra: str, config: Path | None = None, tracking: bool = True) -> tuple[int, str]:
    """``litplug VERB [config] <tiny run> extra`` in-process; returns (exit code, stderr). Tracking
    stays on (into tmp_path/mlflow.db), so a refused run is seen to create no MLflow store."""
    overrides = [o for o in TINY_OVERRIDES if tracking is False or o != "tracking.enabled=false"]
    argv = [verb, *([str(config)] if config else []), *overrides, f"run.output_dir={tmp_path}", "run.name=run",
            f"data.cache_dir={tmp_path / 'cache'}", *extra]
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def assert_refused(tmp_path: Path, *extra: str, pattern: str, config: Path | None = None,
                   verbs: tuple[str, ...] = ("config", "train")) -> str:
    """Each verb exits 2 with a one-line message matching ``pattern``; train leaves no run and no
    store. Problems in the data itself are found when it is read (train), not by `litplug config`."""
    for verb in verbs:
        code, err = cli(verb, tmp_path, *extra, config=config)
        assert code == 2, f"{verb}: exit {code}\n{err[-3000:]}"
        assert re.search(pattern, err, re.S), f"{verb}: {err}"
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "run").exists() and not (tmp_path / "mlflow.db").exists()
    return err


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


ROWS = [{"prompt": f"{a} + {b} =", "answer": str(a + b)} for a in range(10) for b in range(10)]


# 1. sources that would log under the same val/<name>/loss

@pytest.mark.parametrize("sources", [
    "[{task: arithmetic}, {task: arithmetic, params: {digits: 3}}]",
    "[{path: A/data.jsonl}, {path: B/data.jsonl}]",
    "[{task: arithmetic}, {path: C/arithmetic.jsonl}]",
])
def test_sources_with_the_same_name_are_refused(tmp_path: Path, sources: str) -> None:
    for folder in "ABC":
        jsonl(tmp_path / folder / "data.jsonl", ROWS)
        jsonl(tmp_path / folder / "arithmetic.jsonl", ROWS)
    sources = sources.replace("A/", f"{tmp_path}/A/").replace("B/", f"{tmp_path}/B/").replace("C/", f"{tmp_path}/C/")
    assert_refused(tmp_path, f"data.sources={sources}", "data.tokenizer=byte",
                   pattern=r"data\.sources\.0 and data\.sources\.1.*name:")


def test_distinct_names_make_same_task_sources_valid() -> None:
    cfg = load_config(None, ["data.sources=[{task: arithmetic}, {task: arithmetic, name: arith3}]"])
    assert [s.name for s in cfg.data.sources] == ["", "arith3"]


def test_a_plugin_added_source_with_a_taken_name_is_refused(tmp_path: Path) -> None:
    cfg = load_config(None, TINY_OVERRIDES)
    sources = [*source_specs(cfg), SourceConfig(task="arithmetic")]  # as a data_sources hook might append
    with pytest.raises(DataError, match=r"'arithmetic'.*name"):
        LitplugDataModule(cfg, byte_tokenizer(), sources, tmp_path)


# 2. a batch larger than the training data: 0 steps

def test_batch_larger_than_the_training_rows_is_refused(tmp_path: Path) -> None:
    sources = "data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 5, num_validation: 8, num_test: 8}]"
    assert_refused(tmp_path, sources, "data.batch_size=8", verbs=("train",),
                   pattern=r"'arithmetic'.*5 training rows.*data\.batch_size = 8")


def test_a_mixture_that_runs_out_before_one_batch_is_refused(tmp_path: Path) -> None:
    # half the draws come from a source of 3 rows: it runs out after about 6 rows, before one batch of 8
    sources = ("data.sources=[{task: arithmetic, name: big, num_train: 256, num_validation: 8, num_test: 8},"
               " {task: arithmetic, name: small, num_train: 3, num_validation: 8, num_test: 8}]")
    assert_refused(tmp_path, sources, "data.batch_size=8", verbs=("train",),
                   pattern=r"'small'.*3 training rows.*data\.batch_size")


# 3. a jsonl file mixing text records and prompt/answer records

def test_jsonl_mixing_text_and_prompt_answer_is_refused(tmp_path: Path) -> None:
    file = jsonl(tmp_path / "mixed.jsonl", [{"text": "a b c"}, {"text": "d e f"}, ROWS[0], {"text": "g"}])
    spec = SourceConfig(path=str(file), validation_fraction=0.5)
    with pytest.raises(DataError, match=rf"{re.escape(str(file))}.*line 3.*prompt.*answer.*line 1.*text"):
        read_examples(spec, "train", 0)
    assert_refused(tmp_path, f"data.sources=[{{path: {file}}}]", "data.tokenizer=byte",
                   verbs=("train",), pattern=rf"{re.escape(str(file))}.*line 3")


def test_a_directory_mixing_the_two_kinds_is_refused(tmp_path: Path) -> None:
    jsonl(tmp_path / "d" / "a.jsonl", ROWS)
    write(tmp_path / "d" / "b.txt", "plain text\n")
    with pytest.raises(DataError, match=r"b\.txt.*line 1"):
        read_examples(SourceConfig(path=str(tmp_path / "d")), "train", 0)


# 4. data that is not UTF-8, and data.on_bad_rows

BAD_UTF8 = b'{"text": "fine"}\n{"text": "bad \xff byte"}\n{"text": "also fine"}\n{"other": 1}\n'


@pytest.mark.parametrize("suffix", [".jsonl", ".txt"])
def test_non_utf8_data_names_file_and_line(tmp_path: Path, suffix: str) -> None:
    file = write(tmp_path / f"data{suffix}", BAD_UTF8)
    with pytest.raises(DataError, match=rf"{re.escape(str(file))}.*line 2.*UTF-8.*on_bad_rows"):
        read_examples(SourceConfig(path=str(file), validation_fraction=0.0), "train", 0)


def test_non_utf8_data_file_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    file = write(tmp_path / "data.jsonl", BAD_UTF8)
    assert_refused(tmp_path, f"data.sources=[{{path: {file}}}]", "data.tokenizer=byte",
                   verbs=("train",), pattern=rf"{re.escape(str(file))}.*line 2")


def test_on_bad_rows_skip_skips_and_reports_the_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file = write(tmp_path / "data.jsonl", BAD_UTF8 + b"{broken\n")
    cfg = load_config(None, [f"data.sources=[{{path: {file}, validation_fraction: 0.0}}]", "data.on_bad_rows=skip"])
    (spec,) = source_specs(cfg)
    assert spec.on_bad_rows == "skip"  # data.on_bad_rows is every source's default
    with caplog.at_level(logging.WARNING, logger="litplug"):
        examples = read_examples(spec, "train", 0)
    assert [e.answer for e in examples] == ["fine", "also fine"]
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 3 " in warning and str(file) in warning and "line 2" in warning, warning


def test_on_bad_rows_is_validated(tmp_path: Path) -> None:
    assert_refused(tmp_path, "data.on_bad_rows=ignore", pattern=r"data\.on_bad_rows.*'error' or 'skip'")


# 5. config values that were tracebacks (exit 1) or silently accepted

BAD_VALUES = {
    "precision": (["trainer.precision=bogus"], r"trainer\.precision.*bf16-mixed"),
    "strategy": (["trainer.strategy=bogus"], r"trainer\.strategy.*ddp"),
    "devices 0": (["trainer.devices=0"], r"trainer\.devices"),
    "devices -1 on cpu": (["trainer.devices=-1"], r"trainer\.devices"),
    "betas": (["optim.betas=[2,3]"], r"optim\.betas.*\[0, 1\)"),
    "one beta": (["optim.betas=[0.9]"], r"optim\.betas"),
    "num_workers": (["data.num_workers=-1"], r"data\.num_workers"),
    "accumulate": (["trainer.accumulate_grad_batches=0"], r"trainer\.accumulate_grad_batches"),
    "heads": (["model.hidden_size=64", "model.num_attention_heads=3"],
              r"model\.hidden_size.*64.*model\.num_attention_heads.*3"),
    "kv heads": (["model.num_key_value_heads=3"], r"model\.num_attention_heads.*model\.num_key_value_heads"),
    "warmup": (["optim.warmup_steps=-5"], r"optim\.warmup_steps"),
    "run.name ..": (["run.name=../x"], r"run\.name.*\.\./x"),
    "run.name /": (["run.name=a/b"], r"run\.name.*a/b"),
    "run.name ..only": (["run.name=.."], r"run\.name"),
    "source name /": (["data.sources=[{task: arithmetic, name: a/b}]"], r"data\.sources\.0\.name"),
    "interpolation": (["run.name=${nope}"], r"run\.name.*nope"),
    "sources mapping override": (["data.sources={task: arithmetic}"], r"data\.sources.*list"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_config_values_exit_2_and_write_nothing(tmp_path: Path, case: str) -> None:
    extra, pattern = BAD_VALUES[case]
    assert_refused(tmp_path, *extra, pattern=pattern)


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_gpu_accelerator_without_a_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, accelerator: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert_refused(tmp_path, f"trainer.accelerator={accelerator}",
                   pattern=rf"trainer\.accelerator.*'{accelerator}'.*no GPU.*trainer\.accelerator=cpu")


@pytest.mark.parametrize("value", ["bf16-mixed", "16-mixed", "32", "64-true", "bf16"])
def test_lightning_precisions_are_accepted(value: str) -> None:
    assert load_config(None, [f"trainer.precision={value}"]).trainer.precision == value


@pytest.mark.parametrize("override", ["trainer.strategy=ddp", "trainer.strategy=DDP_spawn", "trainer.devices=auto",
                                      "trainer.devices=2", "model.num_key_value_heads=2",
                                      "model.extra={head_dim: 16}", "run.name=v1.2_ok"])
def test_valid_values_are_accepted(override: str) -> None:
    extra = ["model.num_attention_heads=3"] if "head_dim" in override else []
    load_config(None, [override, *extra])


CONFIG_FILES = {
    "duplicate key": (b"trainer:\n  max_steps: 5\n  max_steps: 6\n", r"'max_steps'.*twice.*line 2.*line 3"),
    "duplicate section": (b"trainer: {max_steps: 5}\noptim: {lr: 0.1}\ntrainer: {max_steps: 6}\n",
                          r"'trainer'.*twice.*line 1.*line 3"),
    "not utf-8": (b"run:\n  name: caf\xe9\n", r"not UTF-8.*line 2"),
    "sources mapping": (b"data:\n  sources:\n    task: arithmetic\n", r"data\.sources.*list"),
    "interpolation": (b"optim:\n  lr: ${nope.x}\n", r"optim\.lr.*nope\.x"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_bad_config_files_exit_2_naming_the_file(tmp_path: Path, case: str) -> None:
    text, pattern = CONFIG_FILES[case]
    path = write(tmp_path / "cfg.yaml", text)
    err = assert_refused(tmp_path, config=path, pattern=pattern)
    assert str(path) in err


def test_yaml_merge_keys_may_still_override() -> None:
    from litplug.config import parse_override

    assert parse_override("plugins.x={base: &b {a: 1}, other: {<<: *b, a: 2}}")[1]["other"] == {"a": 2}


def test_an_override_may_replace_a_broken_interpolation(tmp_path: Path) -> None:
    path = write(tmp_path / "cfg.yaml", "trainer:\n  max_steps: ${nope.x}\n")
    assert load_config(path, ["trainer.max_steps=3"]).trainer.max_steps == 3
