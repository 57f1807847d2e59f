"""`litplug new-plugin`, run outside this repository, makes a package that installs, trains and passes the
conformance harness as generated: an auxiliary z-loss from the step context's logits and a weight-norm
metric from ``after_optimizer_step``, importing only ``litplug.api``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import LITPLUG, litplug, tiny_args


def test_new_plugin_outside_the_repo_installs_trains_and_passes_the_harness(tmp_path: Path) -> None:
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*LITPLUG, "new-plugin", "zloss", "--kind", "objectives"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    folder = elsewhere / "zloss"  # no litplug checkout here: the plugin goes into the current directory
    source = (folder / "litplug_zloss" / "plugin.py").read_text()
    assert "from litplug.api import" in source and "import litplug\n" not in source
    assert "examples/quickstart.yaml" not in (folder / "README.md").read_text()
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(folder)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env["PYTHONPATH"] = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])

    trained = litplug("train", *tiny_args(tmp_path / "runs"), "plugins.zloss={weight: 0.01}", env=env)
    assert trained.returncode == 0, trained.stderr[-2000:]
    metrics = json.loads((tmp_path / "runs" / "run" / "results.json").read_text())["metrics"]
    assert metrics["train/zloss_z"] > 0 and metrics["zloss/weight_norm"] > 0

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
                           capture_output=True, text=True, env=env, cwd=folder, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "9 passed" in tests.stdout


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    assert litplug("new-plugin", "Bad-Name", "--kind", "data", "--dir", str(tmp_path)).returncode == 2
    (tmp_path / "taken").mkdir()
    done = litplug("new-plugin", "taken", "--kind", "data", "--dir", str(tmp_path))
    assert done.returncode == 2 and "already exists" in done.stderr
