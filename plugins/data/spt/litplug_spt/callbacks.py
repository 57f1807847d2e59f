"""Lightning callbacks of the SPT plugin: what the paper measures, and the finetuning stage's
"keep the best checkpoint, never a later one"."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from litdata import StreamingDataLoader, StreamingDataset
from omegaconf import DictConfig

from litplug.api import RunDir, SourceSpec, StepContext, collate, context, drawn_rows, prepare_split, source_name
from litplug_spt.config import SPTConfig
from litplug_spt.mixture import distinct_rows, rows_per_step
from litplug_spt.names import (
    BEST_LOSS_METRIC,
    BEST_STEP_METRIC,
    EPOCHS_METRIC,
    REALISED_EPOCHS_METRIC,
    TOKENS_METRIC,
    test_loss_key,
    train_split_loss_key,
    val_loss_key,
)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Python, NumPy and torch RNG states as they were, whatever the block does to them; so what the
    plugin prepares mid-run never changes training (delta = 0 must equal no plugin)."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_initialized() else []):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)


@torch.no_grad()
def split_loss(module: L.LightningModule, directory: Path, batch_size: int, loss_on: str,
               max_batches: int | None = None) -> float:
    """Mean LM loss over a prepared split, each batch weighted by its rows (as the core's val loss)."""
    with preserved_rng():  # a DataLoader iterator draws its base seed from torch's global RNG
        return _split_loss(module, context(module, "validate"), directory, batch_size, loss_on, max_batches)


def _split_loss(module: L.LightningModule, ctx: StepContext, directory: Path, batch_size: int, loss_on: str,
                max_batches: int | None) -> float:
    loader = StreamingDataLoader(StreamingDataset(str(directory), shuffle=False), batch_size=batch_size,
                                 num_workers=0, collate_fn=partial(collate, loss_on=loss_on))
    was_training = module.training
    module.eval()
    total, rows = 0.0, 0
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        batch = {k: v.to(ctx.device) for k, v in batch.items()}
        n = batch["input_ids"].shape[0]
        total += float(ctx.losses(batch, "validate")["lm"]) * n
        rows += n
    module.train(was_training)
    return total / max(rows, 1)


class SPTMonitor(Callback):
    """Logs the paper's quantities and keeps the finetuning stage's best weights.

    - ``spt/tokens`` T and ``spt/domain_epochs`` E = T * delta / |D| (|D| = distinct domain tokens) on
      every step; the core logs the realised ``data/<source>/fraction`` and ``epochs`` beside them.
    - ``val/<domain>/train_split_loss`` at every validation: the domain loss on data it trains on,
      the scaling law's L_train (``val/<domain>/loss`` on held-out data is L_test).
    - plain HF snapshots at ``snapshot_steps`` (to finetune from intermediate pretraining points).
    - at the end: with ``best`` (early stopping), the best checkpoint's weights are loaded back, so
      the exported model is the minimum-held-out-loss one; then ``test/<source>/loss`` per source.
      These final metrics are kept in ``final``; the plugin's ``final_metrics`` hook hands them to the
      core, which writes them to results.json and MLflow.
    """

    def __init__(self, spt: SPTConfig, config: DictConfig, best: ModelCheckpoint | None = None) -> None:
        self.spt = spt
        self.config = config
        self.best = best
        self._domain_train_dir: Path | None = None
        self._domain_rows = 0
        self._rows_per_step = 0
        self._snapshots_done: set[int] = set()
        self.final: dict[str, float] = {}  # set at the end of training, read by SPTPlugin.final_metrics

    # -- setup ------------------------------------------------------------------------------------
    def _prepare(self, dm: Any, spec: SourceSpec, split: str) -> Path:
        d = self.config.data
        with preserved_rng():  # litdata.optimize reseeds the global RNGs to 42 on a cache miss
            return prepare_split(spec, split, tokenizer=dm.tokenizer, seq_len=d.seq_len, seed=d.seed,
                                 cache_root=dm.cache_root)

    def _domain_spec(self, dm: Any) -> SourceSpec:
        return next(s for s in dm.sources if source_name(s) == self.spt.domain)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        dm = trainer.datamodule
        d = self.config.data
        spec = self._domain_spec(dm)
        self._domain_train_dir = self._prepare(dm, spec, "train")
        split_rows = len(StreamingDataset(str(self._domain_train_dir)))
        self._domain_rows = distinct_rows(spec, split_rows, dm.tokenizer, d.seq_len, d.seed)
        self._rows_per_step = rows_per_step(self.config, trainer.world_size)
        warn_sources_running_out(dm, self.config.trainer.max_steps * self._rows_per_step)

    # -- training ---------------------------------------------------------------------------------
    def domain_epochs(self, step: int) -> float:
        """E = T * delta / |D|, both counted in stored rows of seq_len + 1 tokens."""
        return step * self._rows_per_step * self.spt.delta / self._domain_rows

    def realised_domain_epochs(self, trainer: L.Trainer, step: int) -> float:
        """Domain rows actually drawn (the core's per-source counts) over |D|."""
        counts = drawn_rows(trainer)
        drawn = counts.get(self.spt.domain) if len(counts) > 1 else None
        if drawn is None:  # one training source: every row is from it (delta = 1) or none is (delta = 0)
            drawn = step * self._rows_per_step * (1.0 if self.spt.delta == 1.0 else 0.0)
        return drawn / self._domain_rows

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        step = trainer.global_step
        pl_module.log(TOKENS_METRIC, float(step * self._rows_per_step * self.config.data.seq_len), batch_size=1)
        pl_module.log(EPOCHS_METRIC, self.domain_epochs(step), batch_size=1)
        pl_module.log(REALISED_EPOCHS_METRIC, self.realised_domain_epochs(trainer, step), batch_size=1)
        if step in self.spt.snapshot_steps and step not in self._snapshots_done:
            self._snapshots_done.add(step)
            if trainer.is_global_zero:
                # the one export: other plugins' export_model changes apply, as at the end of training
                context(pl_module).export(RunDir.of(self.config).plugin_dir("snapshots") / f"step={step}")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._domain_train_dir is None:
            return
        limit = trainer.limit_val_batches if isinstance(trainer.limit_val_batches, int) else None
        loss = split_loss(pl_module, self._domain_train_dir, self.config.data.batch_size, self.config.data.loss_on,
                          limit)
        pl_module.log(train_split_loss_key(self.spt.domain), loss, batch_size=1)

    # -- end --------------------------------------------------------------------------------------
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Restore the best weights here, before the core exports the model; the metrics go to ``final``."""
        final: dict[str, float] = {}
        if self.best is not None:
            final.update(restore_best(self.best, pl_module))
        if self.spt.test_loss:
            dm = trainer.datamodule
            for spec in dm.sources:
                directory = self._prepare(dm, spec, "test")
                final[test_loss_key(source_name(spec))] = split_loss(
                    pl_module, directory, self.config.data.batch_size, self.config.data.loss_on)
        self.final = final


def warn_sources_running_out(dm: Any, rows_in_run: int) -> None:
    """litdata ends the epoch and restarts the whole mixture when any source runs out: say so."""
    for name, size, weight in zip(dm.train_names, dm.train_sizes(), dm.train_weights()):
        needed = rows_in_run * weight
        if needed > size:
            rank_zero_warn(f"litplug-spt: training source '{name}' has {size} rows but the run draws about "
                           f"{needed:.0f} from it, so it runs out: litdata then ends the epoch and restarts the "
                           "whole mixture (reseeded), and every other source restarts from its beginning too. "
                           "Give that source more training data (num_train) if you can.")


def restore_best(best: ModelCheckpoint, module: L.LightningModule) -> dict[str, float]:
    """Load the minimum-loss checkpoint's weights into ``module``; its step and loss as metrics."""
    if not best.best_model_path:
        return {}
    checkpoint = torch.load(best.best_model_path, map_location=module.device, weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    out = {BEST_STEP_METRIC: float(checkpoint["global_step"])}
    if best.best_model_score is not None:
        out[BEST_LOSS_METRIC] = float(best.best_model_score)
    return out


def early_stopping_callbacks(spt: SPTConfig, config: DictConfig) -> tuple[EarlyStopping, ModelCheckpoint]:
    """Lightning's EarlyStopping and a best-only ModelCheckpoint, both on the domain's held-out loss."""
    monitor = val_loss_key(spt.domain)
    stopper = EarlyStopping(monitor=monitor, mode="min", patience=spt.patience, min_delta=spt.min_delta,
                            check_on_train_epoch_end=False, strict=True)
    best = ModelCheckpoint(dirpath=RunDir.of(config).checkpoints, filename="best", monitor=monitor, mode="min",
                           save_top_k=1, save_last=False, auto_insert_metric_name=False,
                           enable_version_counter=False, save_on_train_epoch_end=False)
    return stopper, best
