"""Plugin verbs: an unknown verb imports no plugin, a plugin verb imports only the plugin providing it
(declared under the entry-point group ``litplug.verbs``). Checked in a fresh interpreter's sys.modules."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

CHECK = ("import sys\nfrom litplug.cli import main\ncode = main(sys.argv[1:])\n"
         "print('imported', sorted({m.split('.')[0] for m in sys.modules if m.startswith(('litplug_', 'fake_'))}))\n"
         "sys.exit(code)\n")

ALPHA = """
import litplug

class Plugin:
    @litplug.hookimpl
    def cli_commands(self, subparsers):
        p = subparsers.add_parser("alpha-hello", help="say hello")
        p.add_argument("--name", default="world")
        p.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)
"""
MARKER = "class Plugin:\n    pass\n"  # imported, it shows in sys.modules


def _declare_verb(site: Path, name: str, verb: str) -> None:
    """Add ``verb`` to plugin ``name``'s metadata, pointing at its litplug.plugins object."""
    info = site / f"litplug_{name}-1.0.dist-info" / "entry_points.txt"
    value = info.read_text().splitlines()[1].split(" = ")[1]
    info.write_text(info.read_text() + f"\n[litplug.verbs]\n{verb} = {value}\n")


def _cli(site: Path, *argv: str) -> tuple[int, str, str, list[str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    env.pop("LITPLUG_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", CHECK, *argv], capture_output=True, text=True, env=env, timeout=120)
    line = next(x for x in done.stdout.splitlines() if x.startswith("imported "))
    return done.returncode, done.stdout, done.stderr, ast.literal_eval(line.removeprefix("imported "))


def test_unknown_verb_imports_no_plugin_and_suggests_the_near_one(install_fake_plugin: Callable) -> None:
    site = install_fake_plugin("marker", MARKER)
    code, _, err, imported = _cli(site, "nosuchverb")
    assert code == 2 and "invalid choice: 'nosuchverb'" in err, err
    assert imported == []
    code, _, err, imported = _cli(site, "trian", "x=1")
    assert code == 2 and "did you mean 'train'?" in err, err
    assert imported == []


def test_plugin_verb_imports_only_the_plugin_that_provides_it(install_fake_plugin: Callable) -> None:
    site = install_fake_plugin("alpha", ALPHA)
    install_fake_plugin("marker", MARKER)
    _declare_verb(site, "alpha", "alpha-hello")
    code, out, err, imported = _cli(site, "alpha-hello", "--name", "verbs")
    assert code == 0 and "hello verbs" in out, err
    assert imported == ["fake_alpha_0"]
    code, out, err, imported = _cli(site, "--help")  # plugin verbs are listed without importing any plugin
    assert code == 0 and "alpha-hello" in out and imported == []


def test_verb_of_a_broken_plugin_exits_2_naming_it(install_fake_plugin: Callable) -> None:
    site = install_fake_plugin("gamma", "import no_such_module_xyz\n")
    _declare_verb(site, "gamma", "gamma-run")
    code, _, err, _ = _cli(site, "gamma-run")
    assert code == 2 and "'gamma-run' comes from plugin 'gamma'" in err and "no_such_module_xyz" in err, err


@pytest.mark.skipif(not any(ep.name == "sift" for ep in entry_points(group="litplug.verbs")),
                    reason="litplug-sift-masks is not installed (with its litplug.verbs entry point)")
def test_installed_plugin_verb_imports_only_its_plugin(tmp_path: Path) -> None:
    code, out, err, imported = _cli(tmp_path, "sift", "train-task", "--help")
    assert code == 0 and "train-task" in out, err
    assert imported == ["litplug_sift_masks"]
