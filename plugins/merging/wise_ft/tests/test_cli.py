"""``litplug merge wise-ft`` through the real CLI: success, and every bad input exits 2 writing nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from litplug.api import word_tokenizer
from litplug.testing import cli as main


def merge(*args: Any) -> int:
    return main(["merge", "wise-ft", *map(str, args)])


def test_merge_method_is_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["merge"]) == 0
    assert "wise-ft" in capsys.readouterr().out


def test_merge_writes_the_interpolated_model(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, _ = model_pair
    assert merge("--early", early, "--late", late, "--alpha", 0.25, "--out", tmp_path / "m") == 0
    a, b, m = (load_file(d / "model.safetensors") for d in (early, late, tmp_path / "m"))
    name = "model.embed_tokens.weight"
    torch.testing.assert_close(m[name], 0.75 * a[name] + 0.25 * b[name], rtol=0, atol=1e-6)


def test_default_alpha_is_one_half(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, _ = model_pair
    assert merge("--early", early, "--late", late, "--out", tmp_path / "m") == 0
    assert json.loads((tmp_path / "m" / "wise_ft_merge.json").read_text())["alpha"] == 0.5


@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan"])
def test_alpha_outside_unit_interval_is_refused(tmp_path: Path, model_pair: Any, alpha: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    assert merge("--early", early, "--late", late, "--alpha", alpha, "--out", tmp_path / "m") == 2
    assert "--alpha" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_extrapolation_when_explicitly_allowed(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, _ = model_pair
    assert merge("--early", early, "--late", late, "--alpha", 1.5, "--allow-extrapolation",
                 "--out", tmp_path / "m") == 0
    a, b, m = (load_file(d / "model.safetensors") for d in (early, late, tmp_path / "m"))
    name = "lm_head.weight"
    torch.testing.assert_close(m[name], b[name] + 0.5 * (b[name] - a[name]), rtol=0, atol=1e-6)


def test_missing_checkpoint(tmp_path: Path, model_pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, late, _, _ = model_pair
    assert merge("--early", tmp_path / "nope", "--late", late, "--out", tmp_path / "m") == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert merge("--early", tmp_path / "empty", "--late", late, "--out", tmp_path / "m") == 2
    assert "no safetensors weights" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_mismatched_shapes_name_the_first_tensor(tmp_path: Path, model_pair: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    tensors = load_file(late / "model.safetensors")
    tensors["model.norm.weight"] = torch.ones(7)
    other = tmp_path / "other"
    other.mkdir()
    save_file(tensors, other / "model.safetensors", metadata={"format": "pt"})
    assert merge("--early", early, "--late", other, "--out", tmp_path / "m") == 2
    err = capsys.readouterr().err
    assert "model.norm.weight" in err and "shape" in err
    assert not (tmp_path / "m").exists()


def test_missing_tensor_names_it(tmp_path: Path, model_pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    tensors = load_file(late / "model.safetensors")
    del tensors["lm_head.weight"]
    other = tmp_path / "tied"
    other.mkdir()
    save_file(tensors, other / "model.safetensors", metadata={"format": "pt"})
    assert merge("--early", early, "--late", other, "--out", tmp_path / "m") == 2
    assert "'lm_head.weight' is in the --early model but not in the --late model" in capsys.readouterr().err


def test_different_vocabularies_are_refused(tmp_path: Path, model_pair: Any, tiny_tokenizer: Any,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, late_model = model_pair
    vocab = list(tiny_tokenizer.get_vocab())
    swapped = word_tokenizer(["1", "0", *[w for w in vocab if w not in ("0", "1") and not w.startswith("<")]])
    other = tmp_path / "other_vocab"
    late_model.save_pretrained(other)
    swapped.save_pretrained(other)
    assert len(swapped) == len(tiny_tokenizer)
    assert merge("--early", early, "--late", other, "--out", tmp_path / "m") == 2
    assert "tokenizers differ" in capsys.readouterr().err


def test_different_architecture_in_config_is_refused(tmp_path: Path, model_pair: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    other = tmp_path / "other_arch"
    other.mkdir()
    for item in late.iterdir():
        (other / item.name).write_bytes(item.read_bytes())
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "mistral"
    (other / "config.json").write_text(json.dumps(config))
    assert merge("--early", early, "--late", other, "--out", tmp_path / "m") == 2
    assert "model_type" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path: Path, model_pair: Any, capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert merge("--early", early, "--late", late, "--out", out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert merge("--early", early, "--late", late, "--out", out, "--overwrite") == 0
    assert (out / "model.safetensors").is_file() and not (out / "keep.txt").exists()
    assert merge("--early", early, "--late", late, "--out", late, "--overwrite") == 2  # never over an input


def test_a_failure_mid_merge_leaves_no_partial_output(tmp_path: Path, model_pair: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import litplug_wise_ft.interpolate as interpolate

    early, late, _, _ = model_pair

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(interpolate, "save_file", disk_full)
    assert merge("--early", early, "--late", late, "--out", tmp_path / "m") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early", "late"]


@pytest.mark.parametrize("args,message", [
    (["--alphas", "0:1:0.5"], "--eval"),
    (["--alphas", "1:0:0.1", "--eval", "arithmetic"], "--alphas"),
    (["--alphas", "0:1:0", "--eval", "arithmetic"], "--alphas"),
    (["--alphas", "0,1.2", "--eval", "arithmetic"], "outside [0, 1]"),
    (["--alphas", "0,1", "--eval", "arithmetic", "--n", "4", "--k", "1,8"], "k <= --n"),
    (["--alphas", "0,1", "--eval", "no_such_task"], "unknown task"),
    (["--alphas", "0,1", "--eval", "arithmetic", "--task-params", "{digitz: 2}"], "digitz"),
    (["--alphas", "0,1", "--alpha", "0.5", "--eval", "arithmetic"], "not both"),
    (["--alpha", "0.5", "--eval", "arithmetic"], "--alphas"),
    (["--max-shard-size", "lots"], "--max-shard-size"),
])
def test_bad_sweep_arguments_exit_2(tmp_path: Path, model_pair: Any, args: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    early, late, _, _ = model_pair
    assert merge("--early", early, "--late", late, "--out", tmp_path / "s", *args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
