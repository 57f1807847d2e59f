"""A plugin published as its own package: installed from its folder, found through its entry point,
listed, active in a run, and passing the conformance suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT, litplug, tiny_args

EXAMPLE = REPO_ROOT / "examples" / "third_party_plugin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """pip-install the example into its own target folder (the shared venv stays untouched)."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_discovered_and_listed(installed: dict[str, str]) -> None:
    done = litplug("plugins", "--check", "--json", env=installed)
    assert done.returncode == 0, done.stderr
    hello = {r["name"]: r for r in json.loads(done.stdout)}["hello"]
    assert hello["status"] == "ok" and hello["distribution"] == "litplug-hello" and hello["version"] == "0.1.0"
    assert hello["hooks"] == ["extra_losses"]


def test_config_validates_its_section(installed: dict[str, str]) -> None:
    done = litplug("config", "plugins.hello={weight: 0.5}", env=installed)
    assert done.returncode == 0 and "weight: 0.5" in done.stdout


def test_active_in_a_run(installed: dict[str, str], tmp_path: Path) -> None:
    done = litplug("train", *tiny_args(tmp_path), "trainer.max_steps=2", "plugins.hello={weight: 0.5}",
                   env={**installed, "LITPLUG_TRACE": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[litplug trace] extra_losses: hello" in done.stderr
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert metrics["train/hello_l2"] > 0
    assert metrics["train/loss"] == pytest.approx(metrics["train/lm"] + metrics["train/hello_l2"], rel=1e-5)


def test_bad_plugin_option_exits_2(installed: dict[str, str], tmp_path: Path) -> None:
    done = litplug("train", *tiny_args(tmp_path), "plugins.hello={weight: -1}", env=installed)
    assert done.returncode == 2 and "plugins.hello" in done.stderr and "weight must be >= 0" in done.stderr


def test_its_own_conformance_suite_passes(installed: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          capture_output=True, text=True, env={**os.environ, **installed}, timeout=600,
                          cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "7 passed" in done.stdout
