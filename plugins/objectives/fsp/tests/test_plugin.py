"""The plugin inside real runs: conformance, weight 0, causality, export, the reverse-LM teacher, bad input."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from litplug_fsp.heads import head_for
from litplug_fsp.objectives import fsp_bce_loss
from litplug_fsp.reverse import DIRECTION_KEY
from safetensors import safe_open
from transformers import AutoModelForCausalLM

from litplug.api import OutputHead, context, generate
from litplug.testing import TINY_OVERRIDES, PluginConformance, cli, run_training

# The plain FSP-BCE conformance settings are FSPPlugin.conformance (run by litplug's harness).


class TestConformanceRevLM(PluginConformance):
    """FSP-RevLM with a teacher trained by litplug itself (objective=reverse_lm); the teacher is
    reloaded, not checkpointed, so resuming must still be bit-exact."""

    plugin = "fsp"

    @classmethod
    def setup_class(cls) -> None:
        cls._tmp = tempfile.TemporaryDirectory()
        teacher = run_training(Path(cls._tmp.name), {"fsp": {"objective": "reverse_lm"}}, name="teacher")
        cls.teacher_dir = teacher.export_dir
        cls.config = {"objective": "revlm", "revlm_path": str(teacher.export_dir)}

    @classmethod
    def teardown_class(cls) -> None:
        cls._tmp.cleanup()

    def test_teacher_export_is_a_marked_plain_reverse_lm(self) -> None:
        config = json.loads((self.teacher_dir / "config.json").read_text())
        assert config[DIRECTION_KEY] == "right_to_left"
        AutoModelForCausalLM.from_pretrained(self.teacher_dir, local_files_only=True)


def trunk_grads(module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.model.named_parameters()}


def test_aux_weight_zero_is_bit_identical_to_no_plugin(litplug_run) -> None:
    plain = litplug_run(name="plain")
    zero = litplug_run({"fsp": {"tau": 4, "weight": 0.0}}, name="zero")
    assert zero.results["metrics"]["train/loss"] == plain.results["metrics"]["train/loss"]
    assert zero.results["metrics"]["train/fsp_bce"] == 0.0
    plain_state, zero_state = plain.module.model.state_dict(), zero.module.model.state_dict()
    assert all(torch.equal(plain_state[k], zero_state[k]) for k in plain_state)  # 4 steps of equal gradients
    # one more step, gradients compared directly (the aux term is computed, then weighted by 0)
    batch = next(iter(zero.module.trainer.datamodule.train_dataloader()))
    grads = []
    for run in (plain, zero):
        run.module.train()
        run.module.zero_grad()
        terms = context(run.module).losses(dict(batch), "train")
        terms["loss"].backward()
        grads.append((terms["loss"], trunk_grads(run.module)))
    assert "fsp_bce" in terms
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(grads[0][1][k], grads[1][1][k]) for k in grads[0][1])
    assert all(p.grad is None for p in zero.module.aux["fsp"].parameters())


def test_aux_loss_reaches_the_trunk_and_outputs_are_causal(tiny_model, tiny_batch) -> None:
    torch.manual_seed(0)
    head = head_for(tiny_model, "block")
    lm_head = tiny_model.get_output_embeddings()
    hidden = tiny_model.base_model(input_ids=tiny_batch["input_ids"]).last_hidden_state
    fsp_bce_loss(head, OutputHead(lm_head), hidden, tiny_batch["labels"], tau=4).backward()
    trunk = tiny_model.base_model.layers[0].self_attn.q_proj.weight
    assert trunk.grad is not None and trunk.grad.abs().sum() > 0

    def outputs(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            h = tiny_model.base_model(input_ids=ids).last_hidden_state
            return lm_head(h), lm_head(head(h))

    t = 5
    ids = tiny_batch["input_ids"]
    perturbed = ids.clone()
    perturbed[:, t + 1 :] = (perturbed[:, t + 1 :] + 7) % tiny_model.config.vocab_size
    (ntp, aux), (ntp2, aux2) = outputs(ids), outputs(perturbed)
    torch.testing.assert_close(ntp[:, : t + 1], ntp2[:, : t + 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(aux[:, : t + 1], aux2[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(aux[:, t + 1 :], aux2[:, t + 1 :])


def test_export_is_a_plain_lm_that_generates_like_the_trunk(litplug_run) -> None:
    run = litplug_run({"fsp": {"objective": "mtp", "n_heads": 2}})
    assert run.results["metrics"]["train/mtp"] > 0
    with safe_open(str(run.export_dir / "model.safetensors"), "pt") as f:
        exported = set(f.keys())
    assert exported == set(run.module.model.state_dict())  # no auxiliary head in the export
    reloaded = AutoModelForCausalLM.from_pretrained(run.export_dir, local_files_only=True)
    prompts = ["1 2 + 3 4 =", "9 9 + 0 1 =", "5 + 7 ="]
    hooks = context(run.module).hooks
    ours = generate(run.module.model, run.tokenizer, prompts, hooks, max_new_tokens=6)
    theirs = generate(reloaded, run.tokenizer, prompts, hooks, max_new_tokens=6)
    assert ours == theirs


def cli_train(tmp_path: Path, cache: Path, *overrides: str) -> int:
    return cli(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"data.cache_dir={cache}", *overrides])


@pytest.mark.parametrize("options,message", [
    ("{tau: 1}", "tau must be at least 2"),
    ("{tau: 16}", "must be smaller than data.seq_len"),
    ("{objective: mtp, n_heads: 0}", "n_heads must be at least 1"),
    ("{objective: revlm, revlm_path: /nonexistent/revlm}", "not an exported HF model directory"),
    ("{objective: revlm}", "revlm_path is not set"),
    ("{objective: bsc}", "objective must be one of"),
])
def test_bad_options_exit_2_with_a_message(tmp_path, litplug_data_cache, capsys, options, message) -> None:
    assert cli_train(tmp_path, litplug_data_cache, f"plugins.fsp={options}") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_litplug_config_refuses_a_window_as_long_as_the_rows(capsys) -> None:
    """The sequence-length check is the plugin's check_config hook: `litplug config` runs it too."""
    assert cli(["config", *TINY_OVERRIDES, "plugins.fsp={tau: 16}"]) == 2
    assert "must be smaller than data.seq_len" in capsys.readouterr().err


def test_teacher_with_another_vocabulary_exits_2(tmp_path, litplug_data_cache, capsys) -> None:
    byte_run = ["data.tokenizer=byte", "data.seq_len=24", "trainer.max_steps=1"]
    other = run_training(tmp_path, {"fsp": {"objective": "reverse_lm"}}, name="bytes_teacher", overrides=byte_run,
                         cache_dir=litplug_data_cache)
    code = cli_train(tmp_path, litplug_data_cache, f"plugins.fsp={{objective: revlm, revlm_path: {other.export_dir}}}")
    assert code == 2
    err = capsys.readouterr().err
    assert str(other.export_dir) in err and "vocabulary" in err
    assert not (tmp_path / "run").exists()



def test_defaults_are_the_settings_that_solve_path_star(tiny_model) -> None:
    """The defaults are the paper's plain vocabulary sum and, for FSP, a linear aux head (the card's sweep:
    mean or a block head lose the effect); MTP keeps Gloeckle et al.'s one-block heads. An explicit
    choice still wins."""
    from litplug_fsp.config import FSPConfig

    def body(cfg: FSPConfig) -> type:
        return type(head_for(tiny_model, cfg.head).body)

    assert FSPConfig().normalize == "sum"
    assert body(FSPConfig()) is torch.nn.Linear
    assert body(FSPConfig(objective="mtp")) is torch.nn.TransformerEncoderLayer
    assert body(FSPConfig(head="block")) is torch.nn.TransformerEncoderLayer
    assert body(FSPConfig(objective="mtp", head="linear")) is torch.nn.Linear
