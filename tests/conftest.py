"""Shared fixtures for the core tests: fake installed plugin distributions on sys.path."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def install_fake_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Write a plugin module plus a real ``*.dist-info`` with an entry point into a folder on
    sys.path, so importlib.metadata discovers it exactly as it would a pip-installed package."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("LITPLUG_PLUGINS", raising=False)
    added: list[str] = []

    def install(name: str, source: str, dist: str | None = None, version: str = "1.0", target: str = "Plugin") -> Path:
        module = f"fake_{name}_{len(added)}"
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        dist = dist or f"litplug-{name}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[litplug.plugins]\n{name} = {module}:{target}\n")
        added.append(module)
        return site

    yield install
    for module in added:
        sys.modules.pop(module, None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """``N architectures checked, M skipped`` when tests/test_architectures.py ran (works under xdist)."""
    def count(outcome: str) -> int:
        return sum(1 for r in terminalreporter.stats.get(outcome, [])
                   if "test_architectures.py::test_own_loss[" in getattr(r, "nodeid", "") and r.when != "teardown")
    checked, skipped, failed = count("passed"), count("skipped"), count("failed")
    if checked or skipped or failed:
        terminalreporter.write_line(f"{checked} architectures checked, {skipped} skipped"
                                    + (f", {failed} FAILED" if failed else ""))
