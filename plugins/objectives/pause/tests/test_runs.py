"""Whole runs: conformance, vocabulary surgery, finetuning from a pause-pretrained export, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_pause import PauseConfig, PausePlugin
from transformers import AutoModelForCausalLM, AutoTokenizer

from litplug.api import ConfigError
from litplug.testing import TINY_OVERRIDES, cli, state_equal

# The conformance settings are PausePlugin.conformance (run by litplug's harness).


def from_export(run: Any) -> list[str]:
    return [f"model.path={run.export_dir}", f"data.tokenizer={run.export_dir}", "data.loss_on=answer"]


def test_vocabulary_grows_by_exactly_one(tiny_tokenizer: Any, pause_pretrained: Any) -> None:
    before = len(tiny_tokenizer)
    plugin = PausePlugin(PauseConfig())
    plugin.configure_tokenizer(tokenizer=tiny_tokenizer)
    assert len(tiny_tokenizer) == before + 1
    assert plugin.pause_id(tiny_tokenizer) == before
    model = pause_pretrained.module.model
    assert model.config.vocab_size == before + 1
    assert model.get_input_embeddings().num_embeddings == model.get_output_embeddings().out_features == before + 1
    exported = AutoTokenizer.from_pretrained(pause_pretrained.export_dir)
    plugin.configure_tokenizer(tokenizer=exported)  # an exported pause token is reused, not added again
    assert len(exported) == before + 1 and plugin.pause_id(exported) == before


@pytest.mark.parametrize("tied", [True, False])
def test_loaded_model_gets_a_pause_row(tied: bool, tiny_tokenizer: Any, tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from litplug.api import ModelConfig, build_model

    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"hidden_size": 16, "num_attention_heads": 2,
                                                              "intermediate_size": 32, "tie_word_embeddings": tied})
    build_model(cfg, tiny_tokenizer).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    old = model.get_input_embeddings().weight.detach().clone()
    plugin = PausePlugin(PauseConfig())
    plugin.configure_tokenizer(tokenizer=tiny_tokenizer)
    plugin.configure_model(model=model, tokenizer=tiny_tokenizer)
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert embedding.shape[0] == head.shape[0] == old.shape[0] + 1
    assert torch.equal(embedding[:-1], old)
    assert (embedding.data_ptr() == head.data_ptr()) == tied


def test_m0_finetuning_is_bit_identical_to_no_plugin(pause_pretrained: Any, litplug_run: Any) -> None:
    plain = litplug_run(None, from_export(pause_pretrained), name="plain")
    with_plugin = litplug_run({"pause": {"num_pauses": 0}}, from_export(pause_pretrained), name="m0")
    assert not state_equal(plain.module.state_dict(), with_plugin.module.state_dict())
    assert plain.results["metrics"]["train/loss"] == with_plugin.results["metrics"]["train/loss"]


def test_pause_finetuning_from_a_standard_export_trains(litplug_run: Any) -> None:
    std = litplug_run(None, ["model.tie_word_embeddings=true"], name="std")
    ft = litplug_run({"pause": {"num_pauses": 3}}, from_export(std), name="ft")
    model = ft.module.model
    assert model.get_input_embeddings().num_embeddings == std.module.model.config.vocab_size + 1
    assert model.get_input_embeddings().weight.data_ptr() == model.get_output_embeddings().weight.data_ptr()
    assert torch.isfinite(torch.tensor(ft.results["metrics"]["train/loss"]))


def test_export_reloads_and_generates_with_pauses_through_litplug(pause_pretrained: Any, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    export = pause_pretrained.export_dir
    tokenizer = AutoTokenizer.from_pretrained(export)  # plain transformers, no litplug involved
    model = AutoModelForCausalLM.from_pretrained(export)
    pause_id = tokenizer.convert_tokens_to_ids("<pause>")
    assert tokenizer.encode("<pause>", add_special_tokens=False) == [pause_id]
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)

    run_dir = str(pause_pretrained.run_dir)
    assert cli(["generate", run_dir, "--prompt", "1 2 + 3 4 =", "--max-new-tokens", "4"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["prompt"] == "1 2 + 3 4 =" and "<pause>" not in line["completion"]
    out = tmp_path / "eval.json"
    assert cli(["eval", run_dir, "plugins.pause.inference_pauses=1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["arithmetic"]["num_examples"] == 4


@pytest.mark.parametrize("option, value, key", [
    ("pretrain_fraction", 1.0, "pretrain_fraction"),
    ("pretrain_fraction", -0.1, "pretrain_fraction"),
    ("num_pauses", -1, "num_pauses"),
    ("inference_pauses", -2, "inference_pauses"),
    ("mode", "both", "mode"),
])
def test_bad_options_exit_2(option: str, value: Any, key: str, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["train", *_tiny_config(tmp_path), f"plugins.pause.{option}={value}"]) == 2
    assert f"plugins.pause.{key}" in capsys.readouterr().err


@pytest.mark.parametrize("token", ["=", "<pad>", "7"])
def test_pause_string_in_the_vocabulary_exits_2(token: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="already exists in the tokenizer's vocabulary"):
        PausePlugin(PauseConfig(token=token)).configure_tokenizer(
            tokenizer=AutoTokenizer.from_pretrained(_word_tokenizer_dir(tmp_path)))
    code = cli(["train", *_tiny_config(tmp_path), f"plugins.pause.token={token}"])
    assert code == 2
    assert "plugins.pause.token" in capsys.readouterr().err
    assert not any((tmp_path / "runs").glob("*/checkpoints"))


def _word_tokenizer_dir(tmp_path: Path) -> Path:
    from litplug.api import get_task, word_tokenizer

    target = tmp_path / "tok"
    word_tokenizer(get_task("arithmetic", {"digits": 2}).vocab()).save_pretrained(target)
    return target


def _tiny_config(tmp_path: Path) -> list[str]:
    """A YAML config path plus the test kit's tiny overrides."""
    config = tmp_path / "tiny.yaml"
    config.write_text("plugins:\n  pause: {}\n")
    return [str(config), *TINY_OVERRIDES, f"run.output_dir={tmp_path / 'runs'}"]
