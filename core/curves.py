"""The run's loss curves as a picture: training loss (each term) and every source's validation loss.

Recorded by a callback at the logging interval, saved to ``loss_history.json`` in the run directory with
every checkpoint and validation, and drawn with matplotlib's object API (no pyplot, no display) at the end
of the run. A resumed run keeps the
points up to the step it resumes from, so it draws its whole history, including the validation that
ran after the checkpoint it resumes from was saved. MLflow holds the same numbers as metrics, but a
PNG beside the run reads without a server.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from litplug.progress import is_log_step

# training metrics that are not losses
NOT_LOSSES = frozenset({"train/lr", "train/tokens_per_s"})


class LossHistory(Callback):
    """``{metric: [[step, value], ...]}`` for ``train/<term>`` and ``val/<source>/loss``, saved to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.series: dict[str, list[list[float]]] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        """After any checkpoint is restored: the saved points up to the step the run continues from."""
        self.series = {}
        if trainer.global_step and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
            except ValueError:  # cut short by a kill mid-write: start the picture afresh
                saved = {}
            for key, points in saved.items():
                kept = [[int(p[0]), float(p[1])] for p in points if p[0] <= trainer.global_step]
                if kept:
                    self.series[key] = kept

    def _add(self, key: str, step: int, value: float) -> None:
        points = self.series.setdefault(key, [])
        if points and points[-1][0] >= step:  # validated again at a step (a resume), or logged twice
            points[:] = [p for p in points if p[0] < step]
        if math.isfinite(value):
            points.append([step, value])

    def _save(self) -> None:
        if getattr(rank_zero_only, "rank", 0) != 0 or not self.path.parent.is_dir():
            return
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.series))
        os.replace(tmp, self.path)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_log_step(trainer):
            for key, value in trainer.callback_metrics.items():
                if key.startswith("train/") and key not in NOT_LOSSES:
                    self._add(key, trainer.global_step, float(value))

    # Written when a checkpoint is (a resume keeps the points up to it), after each validation (which runs
    # after that step's checkpoint) and at the end: never per step, so a long run's file costs nothing.
    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        self._save()

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/") and key.endswith("/loss"):
                self._add(key, trainer.global_step, float(value))
        self._save()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._save()


def plot_losses(series: dict[str, list[list[float]]], path: Path, title: str) -> Path | None:
    """Two panels, training and validation (log-scaled when the loss falls by more than a decade or so).
    None if there is nothing to draw."""
    from matplotlib.figure import Figure

    panels = [("training", sorted(k for k in series if k.startswith("train/"))),
              ("validation", sorted(k for k in series if k.startswith("val/")))]
    panels = [(name, keys) for name, keys in panels if any(series[k] for k in keys)]
    if not panels:
        return None
    fig = Figure(figsize=(5.5 * len(panels), 4), layout="constrained")
    for i, (name, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        values = []
        for key in keys:
            steps, ys = zip(*series[key]) if series[key] else ((), ())
            label = key.removeprefix("train/") if name == "training" else key.removeprefix("val/").removesuffix("/loss")
            ax.plot(steps, ys, marker="." if len(steps) < 30 else None, label=label,
                    linewidth=2.2 if key == "train/loss" else 1.3)
            values += ys
        if values and min(values) > 0 and max(values) / min(values) > 20:  # a loss that falls by decades
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats per token)" if name == "validation" else "loss")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return path
