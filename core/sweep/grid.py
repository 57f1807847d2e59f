"""Grid syntax (Hydra's multirun anchors it): ``key=a,b,c`` and ``key=range(a,b[,step])`` are sweep axes;
any other ``key=value`` is a fixed override. A comma inside brackets, braces or quotes never splits, so
``data.sources=[{...},{...}]`` stays one value."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from litplug.errors import ConfigError

RANGE = re.compile(r"^range\(\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)$")
SAFE = re.compile(r"[^A-Za-z0-9._=+-]")


def split_top_level(text: str) -> list[str]:
    """``a,b`` -> ["a", "b"]; commas nested in [], {}, () or quotes do not split."""
    parts, depth, quote, current = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def sweep_values(value: str, where: str) -> list[str] | None:
    """The values of a sweep axis, or None when ``value`` is a single (fixed) value."""
    value = value.strip()
    match = RANGE.match(value)
    if match:
        start, stop, step = int(match[1]), int(match[2]), int(match[3] or 1)
        values = [str(v) for v in range(start, stop, step)] if step else []
        if not values:
            raise ConfigError(f"{where}: '{value}' is an empty range.")
        return values
    if value.startswith(("[", "{")):
        return None
    parts = split_top_level(value)
    if len(parts) == 1:
        return None
    if any(not p.strip() for p in parts):
        raise ConfigError(f"{where}: '{value}' has an empty value in its comma list.")
    return [p.strip() for p in parts]


def parse_overrides(overrides: Iterable[str], where: str = "command line") -> tuple[dict[str, list[str]], list[str]]:
    """Sweep axes (in order of appearance) and fixed overrides."""
    axes: dict[str, list[str]] = {}
    fixed: list[str] = []
    for text in overrides:
        if "=" not in text:
            raise ConfigError(f"{where}: '{text}' is not key=value.")
        key, value = text.split("=", 1)
        values = sweep_values(value, f"{where}: {key}")
        if values is None:
            fixed.append(text)
        elif key in axes:
            raise ConfigError(f"{where}: the key '{key}' is swept twice.")
        else:
            axes[key] = values
    return axes, fixed


def expand(axes: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination, the last axis varying fastest (one dict per cell)."""
    keys = list(axes)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(axes[k] for k in keys))]


def cell_name(values: dict[str, str]) -> str:
    """A directory name from a cell's values: ``seed=0_tau=4`` (the keys' last parts, or the full keys when
    two share a last part); ``base`` for a stage without axes."""
    if not values:
        return "base"
    short = [k.rsplit(".", 1)[-1] for k in values]
    keys = short if len(set(short)) == len(short) else list(values)
    return "_".join(SAFE.sub("-", f"{k}={v}") for k, v in zip(keys, values.values()))
