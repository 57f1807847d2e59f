"""Exact resume: a run killed at any step and restarted with the same command ends bit-identical to
an uninterrupted run, with the same logged losses; checkpoints are written atomically."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import mlflow
import pytest
import torch
from helpers import LITPLUG, tiny_args
from safetensors.torch import load_file

from litplug.testing import PluginConformance, state_equal

MIXTURE = ("data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 256, weight: 0.75}, "
           "{task: arithmetic, name: mul, params: {digits: 2, op: mul}, num_train: 128, weight: 0.25}]")


class TestCoreConformance(PluginConformance):
    """The core alone passes the suite every plugin passes (discovery aside: it is no plugin)."""

    def test_discovered_through_entry_point(self) -> None:
        pytest.skip("the core is not a plugin")

    def test_config_validates_and_rejects_unknown_keys(self) -> None:
        pytest.skip("covered by tests/test_config.py")

    def test_every_hook_is_exercised(self) -> None:
        pytest.skip("the core is not a plugin")


class TestMixtureResume(TestCoreConformance):
    """litdata's weighted mixture has no length, so Lightning reads a batch ahead: resume must
    still continue exactly where training was (see discount_prefetched_batch)."""

    overrides = (MIXTURE, "data.seq_len=20")

    def test_trains_exports_and_reloads(self) -> None:
        pytest.skip("covered by the single-source case")


def _losses(tracking_dir: Path, run_dir: Path) -> dict[int, list[float]]:
    info = json.loads((run_dir / "mlflow_run.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tracking_dir / 'mlflow.db'}")
    history: dict[int, list[float]] = {}
    for m in client.get_metric_history(info["run_id"], "train/loss"):
        history.setdefault(m.step, []).append(m.value)
    return history


# one source of 40 rows, batch 8: 5 steps an epoch, so the resume from step 4 crosses into epoch 2
SINGLE_SMALL = "data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 40}]"


@pytest.mark.parametrize("data", [MIXTURE, SINGLE_SMALL], ids=["mixture", "single-source-across-epochs"])
def test_sigkill_mid_run_then_same_command_is_bit_identical(data: str, tmp_path: Path,
                                                            litplug_data_cache: Path) -> None:
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}

    def command(name: str) -> list[str]:
        args = [a for a in tiny_args(tmp_path, name, litplug_data_cache) if a != "tracking.enabled=false"]
        return [*LITPLUG, "train", *args, data, "data.seq_len=20", "trainer.max_steps=8",
                "trainer.checkpoint_every_n_steps=2", "eval.num_examples=2"]

    full = subprocess.run(command("full"), capture_output=True, text=True, env=env, timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]

    victim = subprocess.Popen(command("killed"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=env)
    for line in victim.stdout:
        if line.startswith("step 5/8"):
            victim.send_signal(signal.SIGKILL)
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_dir = tmp_path / "killed"
    assert torch.load(killed_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not (killed_dir / "export").exists()

    again = subprocess.run(command("killed"), capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]

    a, b = load_file(tmp_path / "full" / "export" / "model.safetensors"), load_file(killed_dir / "export" /
                                                                                     "model.safetensors")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    full_losses, resumed_losses = _losses(tmp_path, tmp_path / "full"), _losses(tmp_path, killed_dir)
    assert sorted(full_losses) == sorted(resumed_losses) and len(full_losses) == 8
    for step, values in resumed_losses.items():  # step 5 was logged before the kill and again after
        assert values == [full_losses[step][0]] * len(values), f"step {step}: {values} vs {full_losses[step]}"


def test_a_crash_while_saving_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch) -> None:
    import fsspec.implementations.local as local
    import lightning as L

    model = torch.nn.Linear(2, 2)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_steps=1)
    trainer.strategy.connect(L.LightningModule())
    path = tmp_path / "last.ckpt"
    trainer.strategy.checkpoint_io.save_checkpoint({"state_dict": model.state_dict(), "step": 1}, path)

    def write_half_then_crash(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError("disk vanished mid-write")

    monkeypatch.setattr(local.LocalFileOpener, "write", write_half_then_crash)
    with pytest.raises(OSError, match="mid-write"):
        trainer.strategy.checkpoint_io.save_checkpoint({"state_dict": {}, "step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1


def test_mixture_resume_after_an_epoch_boundary_is_bit_exact(litplug_run) -> None:
    """A mixture small enough to end epochs every few steps; resuming inside the second epoch must
    replay that epoch's own (reseeded) draws."""
    small = ("data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 40, weight: 0.75}, "
             "{task: arithmetic, name: mul, params: {digits: 2, op: mul}, num_train: 24, weight: 0.25}]")
    keep = [small, "data.seq_len=20", "trainer.max_steps=14", "trainer.keep_checkpoints=true"]
    full = litplug_run(None, keep, name="full")
    state = torch.load(full.run_dir / "checkpoints" / "step=8.ckpt", weights_only=True)
    loader_state = state["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert loader_state["current_epoch"] >= 2, "the test must resume after the first epoch ended"
    resumed_dir = full.run_dir.parent / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    (resumed_dir / "checkpoints" / "last.ckpt").write_bytes((full.run_dir / "checkpoints" / "step=8.ckpt").read_bytes())
    resumed = litplug_run(None, keep, name="resumed")
    diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
    assert not diff, f"resumed run differs from the uninterrupted run in {diff[:5]}"
    assert resumed.results["metrics"]["train/loss"] == full.results["metrics"]["train/loss"]


def test_mixture_resume_from_any_step_around_an_epoch_end_is_bit_exact(litplug_run) -> None:
    """Resumed from every step of a run whose mixture ends epochs every few steps. The step just before
    an epoch ends is the hard one: Lightning's prefetched batch held the ending source's last rows, and
    litdata had already advanced that source's epoch (a SIGTERM that landed there resumed with the next
    epoch's shuffle)."""
    import shutil

    small = ("data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 40, weight: 0.75}, "
             "{task: arithmetic, name: mul, params: {digits: 2, op: mul}, num_train: 24, weight: 0.25}]")
    keep = [small, "data.seq_len=20", "trainer.max_steps=12", "trainer.keep_checkpoints=true",
            "trainer.checkpoint_every_n_steps=1", "eval.num_examples=2"]
    full = litplug_run(None, keep, name="full")
    epochs = [torch.load(full.dir.checkpoint(k), weights_only=True)["loops"]["fit_loop"]["state_dict"]
              ["combined_loader"][0]["current_epoch"] for k in range(1, 12)]
    assert epochs[-1] > epochs[0], f"the mixture must end an epoch within the run (epochs by step: {epochs})"
    for k in range(1, 12):
        resumed_dir = full.run_dir.parent / f"from{k}"
        (resumed_dir / "checkpoints").mkdir(parents=True)
        shutil.copy(full.dir.checkpoint(k), resumed_dir / "checkpoints" / "last.ckpt")
        resumed = litplug_run(None, keep, name=f"from{k}")
        diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
        assert not diff, f"resumed from step {k} (epochs by step {epochs}): differs in {diff[:3]}"


def test_single_source_resume_across_an_epoch_boundary_is_bit_exact(litplug_run) -> None:
    """One source of 200 rows, batch 8: 25 steps an epoch. Resumed from step 10 (epoch 1), the run
    crosses into epoch 2 and must draw epoch 2's shuffle exactly as the uninterrupted run did."""
    source = "data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 200}]"
    keep = [source, "data.seq_len=20", "trainer.max_steps=40", "trainer.checkpoint_every_n_steps=10",
            "trainer.keep_checkpoints=true", "eval.num_examples=2"]
    full = litplug_run(None, keep, name="full")
    resumed_dir = full.run_dir.parent / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    step10 = full.run_dir / "checkpoints" / "step=10.ckpt"
    (resumed_dir / "checkpoints" / "last.ckpt").write_bytes(step10.read_bytes())
    resumed = litplug_run(None, keep, name="resumed")
    diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
    assert not diff, f"resumed run differs from the uninterrupted run in {diff[:5]}"


def test_a_run_resumed_from_its_final_checkpoint_reports_the_same_metrics(litplug_run) -> None:
    """Killed after its last checkpoint (during the final validation, export or evaluation), the re-run
    trains no step: it must still report the uninterrupted run's training and validation metrics."""
    import shutil

    full = litplug_run(None, ["trainer.keep_checkpoints=true"], name="full")
    final = full.results["global_step"]
    resumed_dir = full.run_dir.parent / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(full.dir.checkpoint(final), resumed_dir / "checkpoints" / "last.ckpt")
    resumed = litplug_run(None, ["trainer.keep_checkpoints=true"], name="resumed")
    for key in ("train/loss", "train/lm", "val/arithmetic/loss", "eval/arithmetic/exact_match"):
        assert resumed.results["metrics"][key] == full.results["metrics"][key], key
