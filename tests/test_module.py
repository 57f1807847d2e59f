"""The training step: one backbone pass, LM loss + plugin terms, the non-finite guard."""

from __future__ import annotations

import io
from contextlib import redirect_stderr
from pathlib import Path

import torch
from omegaconf import OmegaConf

import litplug
from litplug.cli import main
from litplug.config import RootConfig
from litplug.module import LitplugModule
from litplug.plugins import new_manager, register_all
from litplug.testing import TINY_OVERRIDES


class TwoTerms:
    @litplug.hookimpl
    def extra_losses(self, ctx, hidden):
        return {"mean_hidden": hidden.mean() * 0.5, "head_norm": ctx.model.get_output_embeddings().weight.norm()}


def module_with(plugins: dict, model, tokenizer) -> LitplugModule:
    pm = new_manager()
    register_all(pm, plugins)
    return LitplugModule(OmegaConf.structured(RootConfig), model, tokenizer, pm)


def test_lm_loss_equals_hf_causal_lm_loss(tiny_model, tiny_tokenizer, tiny_batch) -> None:
    module = module_with({}, tiny_model, tiny_tokenizer)
    terms = module.compute_losses(dict(tiny_batch), "train")
    # HF's own loss on the unshifted sequence: same targets, shifted inside the model.
    tokens = torch.cat([tiny_batch["input_ids"], tiny_batch["labels"][:, -1:].clamp(min=0)], dim=1)
    hf_labels = torch.cat([tiny_batch["input_ids"][:, :1], tiny_batch["labels"]], dim=1)
    reference = tiny_model(input_ids=tokens, labels=hf_labels).loss
    torch.testing.assert_close(terms["lm"], reference, rtol=1e-6, atol=1e-6)


def test_total_is_lm_plus_every_plugin_term(tiny_model, tiny_tokenizer, tiny_batch) -> None:
    module = module_with({"two": TwoTerms()}, tiny_model, tiny_tokenizer)
    terms = module.compute_losses(dict(tiny_batch), "train")
    assert set(terms) == {"lm", "mean_hidden", "head_norm", "loss"}
    torch.testing.assert_close(terms["loss"], terms["lm"] + terms["mean_hidden"] + terms["head_norm"])
    hidden = tiny_model.base_model(input_ids=tiny_batch["input_ids"]).last_hidden_state
    torch.testing.assert_close(terms["mean_hidden"], hidden.mean() * 0.5)


NAN_PLUGIN = """
import torch, litplug

class Plugin:
    @litplug.hookimpl
    def extra_losses(self, ctx, hidden):
        bad = ctx.global_step >= 2
        return {"exploding": hidden.sum() * (float("nan") if bad else 0.0)}
"""


def test_non_finite_loss_stops_with_step_and_term_and_keeps_checkpoint(tmp_path: Path, install_fake_plugin) -> None:
    install_fake_plugin("exploder", NAN_PLUGIN)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "trainer.checkpoint_every_n_steps=1",
                     "plugins.exploder={}"])
    assert code == 1
    assert "step 3" in err.getvalue() and "exploding" in err.getvalue()
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values() if v.is_floating_point())
