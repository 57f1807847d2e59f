"""`litplug new-plugin` makes a package that installs and passes the conformance suite as generated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import litplug


def test_new_plugin_installs_and_passes_conformance(tmp_path: Path) -> None:
    done = litplug("new-plugin", "my_method", "--kind", "objectives", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "my_method"
    assert (folder / "README.md").is_file() and (folder / "litplug_my_method" / "plugin.py").is_file()
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(site), str(folder)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
                           capture_output=True, text=True, env=env, cwd=folder, timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "5 passed" in tests.stdout


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    assert litplug("new-plugin", "Bad-Name", "--kind", "data", "--dir", str(tmp_path)).returncode == 2
    (tmp_path / "taken").mkdir()
    done = litplug("new-plugin", "taken", "--kind", "data", "--dir", str(tmp_path))
    assert done.returncode == 2 and "already exists" in done.stderr
