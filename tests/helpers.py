"""Small helpers for tests that run the real `litplug` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from litplug.testing import TINY_OVERRIDES

REPO_ROOT = Path(__file__).resolve().parents[1]
LITPLUG = [sys.executable, "-m", "litplug.cli"]


def tiny_args(output_dir: Path, name: str = "run", cache: Path | None = None) -> list[str]:
    args = [*TINY_OVERRIDES, f"run.output_dir={output_dir}", f"run.name={name}"]
    return args + ([f"data.cache_dir={cache}"] if cache else [])


def litplug(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run the real CLI; output captured as text."""
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([*LITPLUG, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def doubled_rows_source(tmp_path: Path, n_train: int = 60, fraction: float = 0.05) -> str:
    """A jsonl source whose training rows appear twice, in the same order (with its held-out rows first).

    litdata gives each of two ranks a contiguous half of the stream, so rank 0 reads the first copy and
    rank 1 the second: at every step both ranks hold the same rows, the global batch is (b, b), and its
    mean gradient is that of b alone. A single process with batch b must then match two data-parallel
    processes to float tolerance; a wrong reduction (sum, not mean) or wrong sharding breaks the match.
    ``n_train`` is a multiple of the per-rank batch, so rank 1 starts exactly at the second copy."""
    import json

    from litplug.data.sources import _file_split
    from litplug.data.tasks import get_task

    train, held_out = [], []
    for e in get_task("arithmetic", {"digits": 2}).examples("train", 4 * n_train, 0):
        line = json.dumps({"prompt": e.prompt, "answer": e.answer})
        (train if _file_split(e, fraction) == "train" else held_out).append(line)
    data = tmp_path / "twice.jsonl"
    data.write_text("\n".join(held_out + train[:n_train] + train[:n_train]) + "\n")
    return f"data.sources=[{{path: {data}, validation_fraction: {fraction}}}]"


def start_mlflow_server(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite store under tmp_path), in its own process group so
    that ``os.killpg(proc.pid, ...)`` stops its workers too; returns once ``/health`` answers."""
    import shutil
    import signal
    import time
    import urllib.request

    import pytest

    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    with (tmp_path / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
             str(tmp_path / "artifacts")],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")


def stop_mlflow_server(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
