"""A Lightning callback that keeps early finetuning checkpoints as plain HF directories.

WiSE-FT needs θ_early next to the final θ_late. The callback exports the model right after the
optimizer steps listed in ``keep_steps`` (``<run>/wise_ft/step_<N>``) and, when scoring is on,
samples validation answers every ``score_every_n_steps`` steps, logs pass@k / majority vote (the
pass@k-over-training curve shows where diversity collapses) and keeps the best-scoring step as
``<run>/wise_ft/best``. Its state (scores so far, best step, kept steps) goes into Lightning's
checkpoint, so a resumed run picks the same best step as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litplug.api import RunDir, context, read_examples, source_name
from litplug_wise_ft.config import WiseFTConfig
from litplug_wise_ft.scoring import mlflow_key, score_model
from litplug_wise_ft.sources import pick_source

__all__ = ["BEST_DIR", "SELECTION_FILE", "EarlyCheckpointKeeper", "pick_source", "step_dir"]

BEST_DIR = "best"
SELECTION_FILE = "selection.json"


def step_dir(step: int) -> str:
    return f"step_{step}"


class EarlyCheckpointKeeper(Callback):
    """Exports θ at chosen steps and the best step by validation pass@k (rank 0 only)."""

    def __init__(self, cfg: WiseFTConfig, config: Any) -> None:
        """``cfg``: the plugin's options; ``config``: the run config (its run directory holds the outputs)."""
        self.cfg = cfg
        self.root = RunDir.of(config).plugin_dir(cfg.output_subdir)
        self.history: list[dict[str, Any]] = []  # one entry per scored step
        self.best: dict[str, Any] | None = None  # {"step", "metric", "value"}
        self.kept: list[int] = []

    # -- checkpointed state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best, "kept": self.kept}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")
        self.kept = list(state_dict.get("kept", []))

    # -- Lightning hooks -------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.cfg.score_every_n_steps:  # fail before training, not at the first scoring step
            pick_source(trainer.datamodule.sources, self.cfg.score_source)
        if trainer.global_step == 0:
            self._at_step(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._at_step(trainer, pl_module, trainer.global_step)

    # -- work ----------------------------------------------------------------------------------------
    def _at_step(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        """Idempotent per step: with gradient accumulation several batches end at one global step."""
        if not trainer.is_global_zero:
            return
        if step in self.cfg.keep_steps and step not in self.kept:
            self._export(pl_module, self.root / step_dir(step))
            self.kept.append(step)
            self._write_selection()
        every = self.cfg.score_every_n_steps
        if every and step % every == 0 and all(h["step"] != step for h in self.history):
            self._score(trainer, pl_module, step)

    def _score(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        c = self.cfg
        ctx = context(pl_module)
        spec = pick_source(trainer.datamodule.sources, c.score_source)
        examples = read_examples(spec, c.score_split, ctx.config.data.seed)[: c.score_num_examples]
        model = ctx.model
        was_training = model.training
        device = next(model.parameters()).device
        # Sampling reseeds torch's global RNG; fork it so training randomness is untouched.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            scores = score_model(model, ctx.tokenizer, ctx.hooks, examples, c.score_n, list(c.score_k),
                                 c.score_temperature, ctx.config.run.seed, c.score_batch_size,
                                 c.score_max_new_tokens)
        model.train(was_training)
        self.history.append({"step": step, **scores})
        value = scores[c.select_metric]
        eligible = c.select_min_step <= step <= (step if c.select_max_step is None else c.select_max_step)
        if eligible and (self.best is None or value > self.best["value"]):
            self._export(pl_module, self.root / BEST_DIR)
            self.best = {"step": step, "metric": c.select_metric, "value": value}
        for logger in trainer.loggers:
            logger.log_metrics({f"wise_ft/{mlflow_key(k)}": v for k, v in scores.items()}, step=step)
        shown = " ".join(f"{k}={v:.3f}" for k, v in scores.items())
        best = f"step {self.best['step']}" if self.best else "none yet"
        print(f"wise_ft: step {step} {source_name(spec)}/{c.score_split}: {shown} (best {c.select_metric}: {best})",
              flush=True)
        self._write_selection()

    def _export(self, pl_module: L.LightningModule, target: Path) -> None:
        """Export exactly what the end of training would (the core's one export): plugins' ``export_model``
        changes are applied to a copy, so training continues on the untouched model."""
        context(pl_module).export(target)

    def _write_selection(self) -> None:
        """``selection.json``: every scored step, the best one and the kept steps (written atomically)."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"select_metric": self.cfg.select_metric, "best": self.best, "kept_steps": self.kept,
                "history": self.history,
                "dirs": {"best": str(self.root / BEST_DIR) if self.best else None,
                         **{str(s): str(self.root / step_dir(s)) for s in self.kept}}}
        tmp = self.root / f".{SELECTION_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.root / SELECTION_FILE)
