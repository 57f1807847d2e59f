"""An optimizer is a plugin: examples/sgd_optimizer, installed from its folder, trains through the exclusive
``configure_optimizer`` hook and passes its own conformance harness; two optimizer plugins are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO_ROOT, litplug, tiny_args

EXAMPLE = REPO_ROOT / "examples" / "sgd_optimizer"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def test_trains_with_sgd_and_resumes_its_state(installed: dict[str, str], tmp_path: Path) -> None:
    done = litplug("train", *tiny_args(tmp_path), "plugins.sgd={momentum: 0.8}", env=installed)
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]
    assert state["param_groups"][0]["momentum"] == 0.8 and "betas" not in state["param_groups"][0]
    assert len(state["param_groups"]) == 2  # the core's decay and no-decay groups


def test_its_check_config_refuses_nesterov_without_momentum(installed: dict[str, str]) -> None:
    done = litplug("config", "plugins.sgd={momentum: 0.0, nesterov: true}", env=installed)
    assert done.returncode == 2 and "plugins.sgd.nesterov" in done.stderr


def test_its_own_conformance_harness_passes(installed: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                          capture_output=True, text=True, env={**os.environ, **installed}, timeout=600, cwd=EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "8 passed" in done.stdout
