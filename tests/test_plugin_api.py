"""The plugin contract's newer hooks and guarantees, each through a real entry-point plugin: the step
context (stage, shared logits, log), start-up checks, step start, final metrics, and the isolation of
plugins that cannot work (no hook, unbuildable defaults)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from litplug.head import OutputHead
from litplug.plugins import list_plugins
from litplug.testing import TINY_OVERRIDES, cli, run_training, step_context

RECORDER = """
from litplug.api import ConfigError, hookimpl

class Plugin:
    seen = []
    def __init__(self):
        Plugin.seen.clear()

    @hookimpl
    def check_config(self, config):
        if config.trainer.max_steps == 7:
            raise ConfigError("plugins.recorder: trainer.max_steps=7 is refused by the plugin's start-up check")

    @hookimpl
    def on_step_start(self, ctx):
        Plugin.seen.append(("start", ctx.stage, ctx.global_step, ctx.batch["input_ids"].shape[0]))

    @hookimpl
    def transform_batch(self, ctx, stage):
        Plugin.seen.append(("transform", stage, ctx.global_step))

    @hookimpl
    def extra_losses(self, ctx, batch):
        Plugin.seen.append(("extra", ctx.stage, ctx.global_step))
        ctx.log("recorder/seen", float(len(Plugin.seen)))
        return None

    @hookimpl
    def final_metrics(self, ctx, metrics):
        assert ctx.stage == "final" and "train/loss" in metrics
        return {"recorder/final": 1.5, "recorder/steps": float(ctx.global_step)}
"""


@pytest.fixture
def recorder(install_fake_plugin: Callable) -> type:
    site = install_fake_plugin("recorder", RECORDER)
    import importlib
    import sys

    sys.path.insert(0, str(site))
    module = importlib.import_module(next(p.stem for p in site.glob("fake_recorder_*.py")))
    return module.Plugin


def test_step_start_runs_once_per_optimizer_step_before_the_batch_is_transformed(recorder, tmp_path: Path) -> None:
    run_training(tmp_path, {"recorder": {}}, ["trainer.accumulate_grad_batches=2", "trainer.max_steps=3",
                                              "trainer.checkpoint_every_n_steps=3"])
    train = [e for e in recorder.seen if e[1] == "train"]
    starts = [e for e in train if e[0] == "start"]
    assert [s[2] for s in starts] == [0, 1, 2]  # three steps of two micro-batches each: one start per step
    assert train[0][0] == "start" and train[1] == ("transform", "train", 0)
    assert sum(e[0] == "transform" for e in train) == 6


def test_extra_losses_sees_the_stage(recorder, tmp_path: Path) -> None:
    run = run_training(tmp_path, {"recorder": {}})
    stages = {e[1] for e in recorder.seen if e[0] == "extra"}
    assert stages == {"train", "validate"}
    assert run.results["metrics"]["recorder/seen"] > 0  # ctx.log lands in the run's metrics


def test_final_metrics_land_in_results_and_mlflow(recorder, tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = run_training(tmp_path, {"recorder": {}}, ["tracking.enabled=true", f"tracking.uri={uri}"])
    saved = json.loads(run.dir.results_file.read_text())["metrics"]
    assert saved["recorder/final"] == 1.5 and saved["recorder/steps"] == run.cfg.trainer.max_steps
    logged = mlflow.MlflowClient(tracking_uri=uri).get_run(run.results["mlflow_run_id"]).data.metrics
    assert logged["recorder/final"] == 1.5


def test_check_config_refuses_at_start_up_with_exit_2_and_nothing_written(recorder, tmp_path: Path) -> None:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        assert cli(["config", *TINY_OVERRIDES, "trainer.max_steps=7", "plugins.recorder={}"]) == 2
    assert "plugins.recorder: trainer.max_steps=7 is refused" in err.getvalue()
    with redirect_stderr(io.StringIO()):
        code = cli(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "trainer.max_steps=7",
                    "plugins.recorder={}"])
    assert code == 2 and not (tmp_path / "run").exists()


def test_the_logits_are_computed_once_per_step_and_shared(tiny_model, tiny_tokenizer, tiny_batch, monkeypatch) -> None:
    calls = []
    original = OutputHead.logits
    monkeypatch.setattr(OutputHead, "logits", lambda self, hidden: calls.append(1) or original(self, hidden))

    class ZLoss:
        from litplug.api import hookimpl

        @hookimpl
        def extra_losses(self, ctx):
            return {"z": torch.logsumexp(ctx.logits, -1).pow(2).mean() * 1e-4}

    ctx = step_context(tiny_model, tiny_tokenizer, plugins={"z": ZLoss()})
    terms = ctx.losses(dict(tiny_batch), "train")
    assert len(calls) == 1 and set(terms) == {"lm", "z", "loss"}  # the core's loss and the plugin's z-loss share them


def test_a_fused_lm_loss_never_materialises_the_logits(tiny_model, tiny_tokenizer, tiny_batch, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(OutputHead, "logits", lambda self, hidden: calls.append(1))

    class Fused:
        from litplug.api import hookimpl

        @hookimpl
        def lm_loss(self, hidden, head):
            return (hidden @ head.weight.T).logsumexp(-1).mean()  # stands in for a fused kernel

    ctx = step_context(tiny_model, tiny_tokenizer, plugins={"fused": Fused()})
    ctx.losses(dict(tiny_batch), "train")
    assert calls == []


def test_a_plugin_that_implements_no_hook_is_listed_broken(install_fake_plugin: Callable, tmp_path: Path) -> None:
    install_fake_plugin("idle", "class Plugin:\n    def extra_losses(self, ctx):\n        return None\n")
    record = {r.name: r for r in list_plugins()}["idle"]
    assert record.status == "broken" and "implements no hook" in record.reason
    with redirect_stderr(err := io.StringIO()):
        assert cli(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "plugins.idle={}"]) == 2
    assert "implements no hook" in err.getvalue()


REQUIRED_FIELD = """
from dataclasses import dataclass
from litplug.api import hookimpl

@dataclass
class Cfg:
    path: str  # required: no default

class Plugin:
    config_class = Cfg
    def __init__(self, cfg):
        self.cfg = cfg

    @hookimpl
    def merge_methods(self):
        return {"needs-path": lambda argv: 0}
"""


def test_merge_isolates_a_plugin_that_cannot_be_built_with_defaults(install_fake_plugin: Callable, capsys) -> None:
    install_fake_plugin("needy", REQUIRED_FIELD)
    assert cli(["merge"]) == 0
    captured = capsys.readouterr()
    assert "wise-ft" in captured.out and "needs-path" not in captured.out
    assert "skipping broken plugin 'needy'" in captured.err and "default config" in captured.err


def test_help_lists_the_installed_plugins_verbs(capsys) -> None:
    assert cli(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(verb in out for verb in ("sift", "spt", "quant-report")) and "(plugin sift_masks" in out
