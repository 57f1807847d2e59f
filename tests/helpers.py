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
