"""SIGTERM and Ctrl-C during ``litplug train``: stop after the current step, with a checkpoint of it.

Left to Lightning, SIGTERM (a SLURM preemption, a Kubernetes eviction) ends the fit with
``SystemExit(None)``: exit code 0, so the scheduler records the job as a success, and no checkpoint
of the steps since the last periodic one. Ctrl-C raises wherever the step happens to be. Here the
first signal asks training to stop at the end of the current optimizer step; the checkpoint is
written at the hook where ModelCheckpoint writes its own (so resuming from it is exactly as
bit-exact), and the run ends with :class:`Interrupted`, exit code 128 + the signal number. A second
signal stops at once. Outside the training loop (building the model, exporting) a signal stops at
once too: there is no step to finish.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from litplug import hookimpl

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """Training stopped on a signal; the CLI exits with 128 + the signal number.

    A BaseException so that no ``except Exception`` on the way up swallows it, and not a
    KeyboardInterrupt, which Lightning turns into ``sys.exit(1)``.
    """

    def __init__(self, signum: int, step: int | None = None) -> None:
        self.signum = int(signum)
        self.step = step
        super().__init__(f"interrupted by {self.signal_name}")

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def handlers_restored(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Put the signal handlers back as they were on the way out.

    litdata's ``optimize`` (run when the data cache is new) installs a SIGINT handler that calls
    ``os._exit(0)`` and never restores it, so a later Ctrl-C would end the process with exit 0.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


class GracefulStop:
    """The handler for SIGTERM/SIGINT while ``litplug train`` runs, and what the stop callback reads.

    ``checkpoint`` is where the stop step is saved (the run's ``last.ckpt``, which a re-run resumes).
    """

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = checkpoint
        self.signum: int | None = None  # the first signal received
        self.in_loop = False  # inside the training loop: a first signal waits for the step to end
        self.trainer: Any = None
        self.saved_step: int | None = None  # global step of the latest checkpoint this process wrote

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        if self.in_loop and self.signum is None:
            self.signum = signum
            name = signal.Signals(signum).name
            # os.write, not print: a handler may run in the middle of another print
            os.write(2, f"\nlitplug: {name} received; stopping after the current step "
                        f"(send it again to stop at once).\n".encode())
            return
        raise Interrupted(self.signum or signum, self.step)

    @property
    def step(self) -> int | None:
        return int(self.trainer.global_step) if self.trainer is not None else None

    @hookimpl
    def callbacks(self, config: Any) -> list[Any]:
        """Registered in the run's plugin manager by ``train_command``, so ``train`` adds the callback."""
        return [stop_callback(self)]


def stop_callback(stop: GracefulStop) -> Any:
    """The Lightning callback that turns a pending signal into a checkpoint and :class:`Interrupted`.

    A ``Checkpoint`` subclass so that Lightning orders it after ModelCheckpoint: at a periodic
    checkpoint step, ModelCheckpoint writes its files first and this one does not write again.
    """
    from lightning.pytorch.callbacks import Checkpoint

    class StopOnSignal(Checkpoint):
        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            stop.trainer = trainer

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            # Lightning registered its own SIGTERM handler at fit start (it raises SystemExit(None) at
            # the end of the step, racing this one); take the signals back for the training loop.
            stop.install()
            stop.in_loop = True
            self._step = trainer.global_step

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
            stop.saved_step = int(trainer.global_step)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            if trainer.global_step == self._step:
                return  # a micro-batch of gradient accumulation: the step is not finished
            self._step = trainer.global_step
            # every rank decides together (a signal may reach only one), and saving is collective
            if not trainer.strategy.reduce_boolean_decision(stop.signum is not None, all=False):
                return
            if stop.saved_step != trainer.global_step:
                trainer.save_checkpoint(stop.checkpoint)
            raise Interrupted(stop.signum or signal.SIGTERM, int(trainer.global_step))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            stop.in_loop = False

    return StopOnSignal()


def interrupted_message(cfg: Any, exc: Interrupted, checkpoint: Path, saved_step: int | None) -> str:
    """One line for the user: where the run stopped, what was kept, how to continue it."""
    at = f" at step {exc.step}" if exc.step is not None else ""
    head = f"litplug: run '{cfg.run.name}' interrupted ({exc.signal_name}){at}"
    if not checkpoint.is_file():
        return f"{head} before its first checkpoint, so nothing was kept; re-running the same command starts it again."
    kept = f"step {saved_step}" if saved_step is not None else "its latest step"
    how = ("Re-run the same command to resume it" if cfg.run.resume
           else "Re-run the same command with run.resume=true to resume it")
    return f"{head}; checkpoint of {kept} in {checkpoint}. {how}."
