"""Mixture accounting: the realised share of each training source, kept out of the LightningModule.

A Lightning callback counts the rows drawn per source (each training row carries its source's index),
logs ``data/<source>/fraction`` and ``data/<source>/epochs`` (rows drawn / rows the source has), and
keeps the counts in the checkpoint. It also owns the two checkpoint fix-ups of the training loader's
state: the discount of the batch Lightning prefetched (see :func:`discount_prefetched_batch`) and the
relocation of a moved run's data cache.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litplug.checkpoints import relocate_loader_state
from litplug.data.datamodule import discount_prefetched_batch

LEGACY_KEY = "litplug_source_counts"  # where checkpoints before the callback kept the counts


class MixtureAccounting(Callback):
    """Rows drawn per training source, logged and checkpointed (a resumed run continues the counts)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        dm = trainer.datamodule
        if not isinstance(batch, dict) or "source" not in batch or dm is None or len(dm.train_names) < 2:
            return
        drawn = torch.bincount(batch["source"].cpu(), minlength=len(dm.train_names)).tolist()
        for name, n in zip(dm.train_names, drawn):
            self.counts[name] = self.counts.get(name, 0) + n
        total = sum(self.counts.values())
        for name, size in zip(dm.train_names, dm.train_sizes()):
            rows = self.counts.get(name, 0)
            pl_module.log(f"data/{name}/fraction", rows / total, batch_size=1)
            pl_module.log(f"data/{name}/epochs", rows / size, batch_size=1)

    def state_dict(self) -> dict[str, Any]:
        return {"source_counts": dict(self.counts)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.counts = dict(state_dict.get("source_counts", {}))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        discount_prefetched_batch(checkpoint, trainer)

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.counts = dict(checkpoint.get(LEGACY_KEY, self.counts))  # the callback state, if any, follows
        if trainer.datamodule is not None:  # a moved run directory (and its data cache) still resumes
            relocate_loader_state(checkpoint, trainer.datamodule.recorded_dirs())


def drawn_rows(trainer: L.Trainer) -> dict[str, int]:
    """Training rows drawn so far per source, for a plugin's callback; empty with a single source."""
    for callback in trainer.callbacks:
        if isinstance(callback, MixtureAccounting):
            return dict(callback.counts)
    return {}
