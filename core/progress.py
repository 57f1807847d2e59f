"""How a run shows that it moves: Lightning's progress bar on a terminal, plain lines elsewhere.

A bar redraws one line with carriage returns, which turns a CI log or ``> train.log`` into noise; a
plain line per logging interval reads well there but leaves a person at a terminal staring at nothing
for ``log_every_n_steps`` steps. ``trainer.progress`` chooses: ``auto`` (bar when stdout is a terminal),
``bar`` or ``lines``.
"""

from __future__ import annotations

import sys
from typing import IO, Any

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm
from lightning.pytorch.utilities import rank_zero_only

PROGRESS_MODES = ("auto", "bar", "lines")
# the bar shows its own rate
_NOT_SHOWN = ("train/tokens_per_s",)


def is_log_step(trainer: L.Trainer) -> bool:
    """Whether this optimizer step is one Lightning logs at (every ``log_every_n_steps``, and the last)."""
    step = trainer.global_step
    return step % max(1, trainer.log_every_n_steps) == 0 or step == trainer.max_steps


def use_bar(mode: str, stream: IO[str] | None = None) -> bool:
    """Whether ``trainer.progress`` means a bar: ``auto`` asks whether ``stream`` (stdout) is a terminal."""
    if mode != "auto":
        return mode == "bar"
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return False


def progress_callback(mode: str) -> Callback:
    return StepProgressBar() if use_bar(mode) else ProgressLines()


class StepProgressBar(TQDMProgressBar):
    """Lightning's bar, counting optimizer steps up to ``max_steps`` (a run is a stream of batches, so an
    epoch means nothing) and showing the training loss terms."""

    def init_train_tqdm(self) -> Tqdm:
        bar = super().init_train_tqdm()
        bar.set_description("Training")
        return bar

    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        super().on_train_epoch_start(trainer)
        bar = self.train_progress_bar
        bar.reset(total=trainer.max_steps)
        bar.n = bar.initial = trainer.global_step  # a resumed run starts where it stopped
        bar.set_description("Training")
        bar.refresh()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if self._should_update(step, self.train_progress_bar.total):
            self.train_progress_bar.n = step
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    def get_metrics(self, trainer: L.Trainer, pl_module: Any) -> dict[str, Any]:
        shown = {k.removeprefix("train/"): v for k, v in super().get_metrics(trainer, pl_module).items()
                 if k != "v_num" and k not in _NOT_SHOWN}
        return shown


class ProgressLines(Callback):
    """One plain line per logging interval (and at the last step): readable in a log file."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if is_log_step(trainer):
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
            shown = " ".join(f"{k[6:]}={v:.4g}" for k, v in sorted(metrics.items()))
            rank_zero_only(print)(f"step {trainer.global_step}/{trainer.max_steps} {shown}", flush=True)
