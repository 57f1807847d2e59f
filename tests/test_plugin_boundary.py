"""The plugin boundary: every plugin in this repository (package, tests, reproduce scripts) and the example
third-party plugin import only ``litplug.api`` and ``litplug.testing``, and touch no private attribute of
litplug or Lightning objects. What they need is in the API, so a third party can rely on it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO_ROOT

ALLOWED = {"litplug.api", "litplug.testing"}
# Public-looking attributes of the core's module that are not part of the API (use the StepContext).
INTERNAL = {"pm", "compute_losses", "source_counts", "_trainer", "_data_fetcher"}
ROOTS = [REPO_ROOT / "plugins", REPO_ROOT / "examples"]


def plugin_files() -> list[Path]:
    files = []
    for root in ROOTS:
        files += [p for p in root.rglob("*.py") if not {"build", ".venv"} & set(p.parts) and
                  not any(part.endswith(".egg-info") for part in p.parts)]
    return sorted(files)


def own_names(tree: ast.AST) -> set[str]:
    """Private names a file defines itself (its own helpers and attributes may be private)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def violations(path: Path, package_names: set[str]) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name == "litplug" or alias.name.startswith("litplug.")) and alias.name not in ALLOWED:
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "litplug":
                found += [f"{node.lineno}: from litplug import {a.name}" for a in node.names
                          if f"litplug.{a.name}" not in ALLOWED]
            elif node.module.startswith("litplug.") and node.module not in ALLOWED:
                found.append(f"{node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            attr = node.attr
            on_self = isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}
            private = attr.startswith("_") and not attr.startswith("__")
            if attr in INTERNAL and not on_self:
                found.append(f"{node.lineno}: .{attr} (litplug internal; use the StepContext / litplug.api)")
            elif private and not on_self and attr not in package_names:
                found.append(f"{node.lineno}: .{attr} (a private attribute of another library's object)")
    return found


def package_of(path: Path) -> Path:
    """The plugin folder a file belongs to (its names may be used privately across its own modules)."""
    for parent in path.parents:
        if (parent / "pyproject.toml").is_file() and parent != REPO_ROOT:
            return parent
    return path.parent


def test_the_scan_finds_the_plugins() -> None:
    files = plugin_files()
    folders = {package_of(p) for p in files}
    assert len([f for f in folders if f.is_relative_to(REPO_ROOT / "plugins")]) == 8
    assert REPO_ROOT / "examples" / "third_party_plugin" in folders


@pytest.mark.parametrize("source", ["import litplug\n", "from litplug import hookimpl\n",
                                    "from litplug.errors import ConfigError\n", "x = module._trainer\n",
                                    "x = pl_module.pm.hook\n", "fetcher = trainer.fit_loop._data_fetcher\n"])
def test_the_scan_catches(tmp_path: Path, source: str) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    assert violations(bad, set())


def test_plugins_import_only_the_api() -> None:
    files = plugin_files()
    names: dict[Path, set[str]] = {}
    for path in files:
        names.setdefault(package_of(path), set()).update(own_names(ast.parse(path.read_text())))
    problems = {str(p.relative_to(REPO_ROOT)): v for p in files if (v := violations(p, names[package_of(p)]))}
    assert not problems, "plugins cross the API boundary:\n" + "\n".join(
        f"  {path}: {'; '.join(v)}" for path, v in sorted(problems.items()))
