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
dependencies = ["litplug$requires"]

[project.entry-points."litplug.plugins"]
$name = "litplug_$name.plugin:${cls}Plugin"

[tool.setuptools]
packages = ["litplug_$name"]
''')

PLUGIN = Template('''"""$title: an auxiliary z-loss and a weight-norm metric, as a starting point (edit me).

The z-loss (PaLM, arXiv 2204.02311) penalises log Z = logsumexp(logits) squared, keeping the softmax
normaliser near 1: ``weight * mean(log Z ** 2)`` over the positions that have a target. It reads the
step's logits from the step context, which computes them once per step and shares them with the
core's loss. After every optimizer step the plugin logs the model's weight norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from litplug.api import IGNORE_INDEX, StepContext, hookimpl


@dataclass
class ${cls}Config:
    weight: float = 1.0e-4  # strength of the z-loss; 0 disables it

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


class ${cls}Plugin:
    """Hooks are documented in docs/hooks.md of litplug; everything a plugin uses is in litplug.api."""

    config_class = ${cls}Config
    litplug_requires = "$requires"
    conformance = {"config": {"weight": 1.0e-3}}  # the settings litplug's conformance harness trains with

    def __init__(self, config: ${cls}Config) -> None:
        self.config = config

    @hookimpl
    def extra_losses(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Logged as train/${name}_z and added to the loss (training only: it shapes gradients)."""
        if not ctx.training or self.config.weight == 0:
            return None
        log_z = torch.logsumexp(ctx.logits.float(), dim=-1)
        has_target = batch["labels"] != IGNORE_INDEX
        return {"${name}_z": self.config.weight * log_z[has_target].pow(2).mean()}

    @hookimpl
    def after_optimizer_step(self, ctx: StepContext, step: int) -> None:
        """The L2 norm of all weights, logged as ${name}/weight_norm after every step."""
        with torch.no_grad():
            norms = torch.stack([p.norm() for p in ctx.model.parameters()])
        ctx.log("${name}/weight_norm", torch.linalg.vector_norm(norms))
''')

TEST = Template('''"""litplug's conformance harness, plus tests of the method's defining properties (add yours)."""

import pytest
import torch

from litplug.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "$name"


def test_weight_zero_trains_exactly_like_no_plugin(litplug_run) -> None:
    plain = litplug_run(None, name="plain")
    off = litplug_run({"$name": {"weight": 0.0}}, name="off")
    assert off.results["metrics"]["train/loss"] == plain.results["metrics"]["train/loss"]
    assert all(torch.equal(a, b) for a, b in zip(off.module.state_dict().values(), plain.module.state_dict().values()))


def test_z_loss_is_added_and_the_weight_norm_logged(litplug_run) -> None:
    metrics = litplug_run({"$name": {"weight": 0.01}}).results["metrics"]
    assert metrics["train/${name}_z"] > 0
    assert metrics["train/loss"] == pytest.approx(metrics["train/lm"] + metrics["train/${name}_z"], rel=1e-5)
    assert metrics["${name}/weight_norm"] > 0
''')

README = Template('''# litplug-$dist_name

$title — a litplug $kind plugin. As generated it adds an auxiliary z-loss (from the step context's
logits) and logs the weight norm after every optimizer step: replace both with your method.

## What it does
(One paragraph: the method, and the paper it comes from.)

## Config (`plugins.$name`)
| key | default | meaning |
|---|---|---|
| weight | 1e-4 | strength of the z-loss term |

## How to run
```bash
pip install -e .
litplug plugins --check                           # imports "$name", lists its hooks
litplug train run.name=$name plugins.$name='{weight: 1e-4}'   # litplug's built-in tiny config
pytest tests                                      # litplug's conformance harness and your tests
```

## What we measured
(Your reproduction at laptop scale, whichever way it went, with the command that regenerates it.)

## Not implemented
(What the paper has that this plugin does not.)
''')


def requires_this_litplug() -> str:
    """``>=X.Y,<X.(Y+1)``: the minor series of the litplug that generated the plugin."""
    from packaging.version import Version

    from litplug import __version__

    v = Version(__version__)
    return f">={v.major}.{v.minor},<{v.major}.{v.minor + 1}"


def default_parent(kind: str) -> Path:
    """``plugins/<kind>`` inside a litplug checkout, else the current directory."""
    inside = Path("plugins") / kind
    return inside if inside.is_dir() else Path(".")


def scaffold(name: str, kind: str, parent: Path | None = None) -> Path:
    """Write ``<parent>/<name>`` (default: ``plugins/<kind>/<name>`` in a litplug checkout, else ``./<name>``);
    refuses to overwrite."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"Plugin name '{name}' must be lower case letters, digits and underscores, "
                          "starting with a letter (it becomes the entry point and the package litplug_<name>).")
    target = (parent or default_parent(kind)) / name
    if target.exists():
        raise ConfigError(f"'{target}' already exists; choose another name or --dir.")
    values = {"name": name, "dist_name": name.replace("_", "-"), "kind": kind,
              "cls": "".join(part.title() for part in name.split("_")), "title": name.replace("_", " ").title(),
              "requires": requires_this_litplug()}
    files = {
        "pyproject.toml": PYPROJECT, "README.md": README, f"litplug_{name}/__init__.py": None,
        f"litplug_{name}/plugin.py": PLUGIN, "tests/test_conformance.py": TEST,
    }
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values) if template else f'"""litplug-{values["dist_name"]}."""\n')
    return target
