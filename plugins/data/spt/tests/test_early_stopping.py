"""Finetuning with early stopping exports the minimum held-out-loss checkpoint, never a later one."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch
from safetensors.torch import load_file

from .conftest import PAIR, sources

# Two domain documents and a large constant LR: the held-out domain loss falls for a step or two,
# then rises as the model memorises them, so the minimum is not the last validation.
OVERFIT = [*PAIR, sources(domain_train=8).replace('"num_documents": 12', '"num_documents": 2'),
           "trainer.val_check_interval=1", "trainer.max_steps=10", "optim.lr=0.05", "optim.schedule=constant",
           "optim.warmup_steps=0", "tracking.enabled=true", "trainer.keep_checkpoints=true",
           "trainer.checkpoint_every_n_steps=1"]


def val_history(run) -> dict[int, float]:
    """Held-out domain loss by global step (Lightning logs validation at global_step - 1)."""
    info = json.loads((run.run_dir / "mlflow_run.json").read_text())
    client = mlflow.MlflowClient(info["tracking_uri"])
    return {m.step: m.value for m in client.get_metric_history(info["run_id"], "val/domain/loss")}


def exported_matches_checkpoint(run, step: int) -> bool:
    exported = load_file(run.export_dir / "model.safetensors")
    state = torch.load(run.run_dir / "checkpoints" / f"step={step}.ckpt", weights_only=True)["state_dict"]
    model = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
    return all(torch.equal(tensor, model[name]) for name, tensor in exported.items())


@pytest.mark.parametrize("patience", [100, 2])
def test_exported_model_is_the_minimum_loss_checkpoint(litplug_run, patience: int) -> None:
    run = litplug_run({"spt": {"delta": 1.0, "early_stopping": True, "patience": patience}}, OVERFIT,
                      name=f"patience{patience}")
    history = val_history(run)
    best_step = min(history, key=history.get)
    last_step = run.results["global_step"]
    assert best_step < last_step, "the run must overfit for this test to mean anything"
    if patience == 2:
        assert last_step == best_step + patience  # stopped early, before max_steps
    else:
        assert last_step == 10
    assert run.results["metrics"]["spt/best_step"] == best_step
    assert run.results["metrics"]["spt/best_val_loss"] == pytest.approx(history[best_step])
    assert exported_matches_checkpoint(run, best_step)
    assert not exported_matches_checkpoint(run, last_step)
