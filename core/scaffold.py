"""``litplug new-plugin``: a plugin folder that installs and passes the conformance suite as generated."""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

from litplug.errors import ConfigError

PYPROJECT = Template('''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "litplug-$dist_name"
version = "0.1.0"
description = "$title: a litplug $kind plugin."
requires-python = ">=3.11"
dependencies = ["litplug>=0.1,<0.2"]

[project.entry-points."litplug.plugins"]
$name = "litplug_$name.plugin:${cls}Plugin"

[tool.setuptools]
packages = ["litplug_$name"]
''')

PLUGIN = Template('''"""$title: what the method does and why, in one paragraph (edit me)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import litplug


@dataclass
class ${cls}Config:
    weight: float = 0.0  # strength of the method's loss term; 0 disables it

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


class ${cls}Plugin:
    """Hooks are listed in litplug/hookspecs.py and docs/hooks.md; implement the ones you need."""

    config_class = ${cls}Config
    litplug_requires = ">=0.1,<0.2"

    def __init__(self, config: ${cls}Config) -> None:
        self.config = config

    @litplug.hookimpl
    def extra_losses(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logged as train/$name and added to the loss."""
        return {"$name": self.config.weight * hidden.pow(2).mean()}
''')

TEST = Template('''"""The litplug conformance suite, plus a test of the method's defining property (add yours)."""

from litplug.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "$name"
    config = {"weight": 0.01}


def test_weight_zero_adds_nothing(litplug_run) -> None:
    run = litplug_run({"$name": {"weight": 0.0}})
    assert run.results["metrics"]["train/$name"] == 0.0
''')

README = Template('''# litplug-$dist_name

$title — a litplug $kind plugin.

## What it does
(One paragraph: the method, and the paper it comes from.)

## Config (`plugins.$name`)
| key | default | meaning |
|---|---|---|
| weight | 0.0 | strength of the loss term |

## How to run
```bash
pip install -e .
litplug train examples/quickstart.yaml plugins.$name='{weight: 0.01}'
pytest tests
```

## What we measured
(Your reproduction at laptop scale, whichever way it went.)

## Not implemented
(What the paper has that this plugin does not.)
''')


def scaffold(name: str, kind: str, parent: Path | None = None) -> Path:
    """Write ``<parent>/<name>`` (default ``plugins/<kind>/<name>``); refuses to overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"Plugin name '{name}' must be lower case letters, digits and underscores, "
                          "starting with a letter (it becomes the entry point and the package litplug_<name>).")
    target = (parent or Path("plugins") / kind) / name
    if target.exists():
        raise ConfigError(f"'{target}' already exists; choose another name or --dir.")
    values = {"name": name, "dist_name": name.replace("_", "-"), "kind": kind,
              "cls": "".join(part.title() for part in name.split("_")), "title": name.replace("_", " ").title()}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"litplug_{name}/__init__.py": None,
        f"litplug_{name}/plugin.py": PLUGIN, "tests/test_conformance.py": TEST,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values) if template else f'"""litplug-{values["dist_name"]}."""\n')
    return target
