"""Running cells on an existing engine: a local process pool (threads each waiting on one ``litplug``
subprocess) or submitit (SLURM; its local executor runs here). A cell is an independent process; its
output goes to ``<sweep>/logs/<stage>.<cell>.log``, its outcome to a status file, so a failed cell never
stops the others and a re-run knows what finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from litplug.sweep.spec import Cell

LITPLUG = [sys.executable, "-m", "litplug.cli"]


def command(cell: Cell) -> list[str]:
    return [*LITPLUG, cell.verb, *cell.argv]


def run_cell_process(argv: list[str], log: str, env: dict[str, str]) -> int:
    """Run one cell's command to completion (also what a submitit job executes); its exit code."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}).returncode


class LocalPool:
    """Up to ``workers`` cells at once, each its own process (its own session, so a signal to the sweep is
    forwarded deliberately, not by the terminal)."""

    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._stopped: int | None = None  # the signal that stopped the sweep: queued cells never start
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="litplug-sweep")

    def submit(self, argv: list[str], log: Path, env: dict[str, str]) -> Future:
        return self._executor.submit(self._run, argv, log, {**self.thread_env(), **env})

    def thread_env(self) -> dict[str, str]:
        """Each cell's share of the cores (``OMP_NUM_THREADS``), unless the user set it: N cells with torch's
        default of one thread per core would oversubscribe the machine N-fold."""
        if "OMP_NUM_THREADS" in os.environ:
            return {}
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // self.workers))}

    def _run(self, argv: list[str], log: Path, env: dict[str, str]) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            with self._lock:
                if self._stopped is not None:
                    return 128 + self._stopped
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
                                        start_new_session=True)
                self._live.add(proc)
            try:
                return proc.wait()
            finally:
                with self._lock:
                    self._live.discard(proc)

    def stop(self, signum: int) -> None:
        """Pass the signal on: each ``litplug train`` checkpoints its current step and exits 128 + signum."""
        with self._lock:
            self._stopped = signum
            for proc in self._live:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class SubmititLauncher:
    """Cells as submitit jobs: ``cluster="slurm"`` on a cluster (``options`` are submitit's parameters,
    e.g. ``slurm_partition``, ``timeout_min``, ``gpus_per_node``), ``cluster="local"`` on this machine."""

    name = "submitit"

    def __init__(self, folder: Path, cluster: str, workers: int, options: dict[str, Any]) -> None:
        import submitit

        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        if cluster == "slurm":
            options = {"slurm_array_parallelism": workers, **options}
        self.executor.update_parameters(**options)
        self.workers = max(1, workers)
        self._jobs: list[Any] = []
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="litplug-submitit")

    def submit(self, argv: list[str], log: Path, env: dict[str, str]) -> Future:
        job = self.executor.submit(run_cell_process, argv, str(log), env)
        self._jobs.append(job)
        return self._pool.submit(job.result)

    def stop(self, signum: int) -> None:
        for job in self._jobs:
            if not job.done():
                job.cancel(check=False)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def status_file(sweep_dir: Path, cell: Cell) -> Path:
    return sweep_dir / "status" / f"{cell.stage}.{cell.name}.json"


def log_file(sweep_dir: Path, cell: Cell) -> Path:
    return sweep_dir / "logs" / f"{cell.stage}.{cell.name}.log"


def read_status(sweep_dir: Path, cell: Cell) -> dict[str, Any] | None:
    path = status_file(sweep_dir, cell)
    return json.loads(path.read_text()) if path.is_file() else None


def write_status(sweep_dir: Path, cell: Cell, state: str, **extra: Any) -> None:
    path = status_file(sweep_dir, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"cell": cell.id, "state": state, "command": command(cell), **extra}, indent=2))
    os.replace(tmp, path)


def is_finished(sweep_dir: Path, cell: Cell) -> bool:
    """Done, and (for a training cell) its results are on disk."""
    status = read_status(sweep_dir, cell)
    done = status is not None and status["state"] == "done"
    return done and (cell.verb != "train" or (cell.directory / "results.json").is_file())


class Progress:
    """``sweep: 3/8 done, 2 running, 1 failed, ETA 0:04:10`` on every change."""

    def __init__(self, total: int, workers: int, out: Callable[[str], None]) -> None:
        self.total, self.workers, self.out = total, workers, out
        self.done = self.failed = self.running = self.skipped = 0
        self.durations: list[float] = []

    def show(self, event: str) -> None:
        left = self.total - self.done - self.failed - self.skipped
        eta = ""
        if self.durations and left:
            seconds = sum(self.durations) / len(self.durations) * left / min(self.workers, left)
            eta = f", ETA {time.strftime('%H:%M:%S', time.gmtime(seconds))}"
        running = min(self.running, self.workers)  # the pool starts submitted cells in order, `workers` at once
        queued = self.running - running
        self.out(f"sweep: {event} | {self.done}/{self.total} done, {running} running"
                 + (f", {queued} queued" if queued else "") + f", {self.failed} failed"
                 + (f", {self.skipped} skipped" if self.skipped else "") + eta)


def run_cells(stages: list[list[Cell]], sweep_dir: Path, launcher: Any, env: dict[str, str], resume: bool,
              out: Callable[[str], None] = print) -> tuple[dict[str, str], int | None]:
    """Run the stages in order (cells of a stage concurrently); returns each cell's final state and the
    signal that stopped the sweep, if any."""
    states: dict[str, str] = {}
    progress = Progress(sum(len(s) for s in stages), launcher.workers, out)
    stopped: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        if not stopped:
            out(f"sweep: signal {signum}: stopping the running cells (each checkpoints its step); re-run the same "
                "command to finish the sweep")
        stopped.append(signum)
        launcher.stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for cells in stages:
            pending: dict[Future, tuple[Cell, float]] = {}
            for cell in cells:
                if stopped:
                    break
                if resume and is_finished(sweep_dir, cell):
                    states[cell.id] = "done"
                    progress.done += 1
                    progress.show(f"{cell.id} finished earlier")
                    continue
                blocked = [n for n in cell.needs if states.get(n) != "done"]
                if blocked:
                    states[cell.id] = "skipped"
                    progress.skipped += 1
                    write_status(sweep_dir, cell, "skipped", reason=f"needs {', '.join(blocked)}, unfinished")
                    progress.show(f"{cell.id} skipped (needs {', '.join(blocked)})")
                    continue
                write_status(sweep_dir, cell, "running", started=time.time())
                future = launcher.submit(command(cell), log_file(sweep_dir, cell), env)
                pending[future] = (cell, time.time())
                progress.running += 1
                progress.show(f"{cell.id} submitted")
            while pending:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    cell, started = pending.pop(future)
                    progress.running -= 1
                    try:
                        code = int(future.result())
                    except Exception as exc:  # noqa: BLE001 - a launcher failure fails the cell, not the sweep
                        code, error = 1, f"{type(exc).__name__}: {exc}"
                    else:
                        error = None
                    seconds = time.time() - started
                    ok = code == 0 and (cell.verb != "train" or (cell.directory / "results.json").is_file())
                    state = "done" if ok else ("interrupted" if stopped else "failed")
                    states[cell.id] = state
                    write_status(sweep_dir, cell, state, returncode=code, seconds=round(seconds, 2), error=error,
                                 log=str(log_file(sweep_dir, cell)))
                    if ok:
                        progress.done += 1
                        progress.durations.append(seconds)
                    elif state == "failed":
                        progress.failed += 1
                    note = "" if ok else f" (exit {code}; log {log_file(sweep_dir, cell)})"
                    progress.show(f"{cell.id} {state}{note}")
            if stopped:
                break
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        launcher.close()
    return states, (stopped[0] if stopped else None)
