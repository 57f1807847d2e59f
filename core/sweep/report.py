"""The sweep's summary: each declared metric grouped by the swept keys (replicates pooled): mean, sd, n;
and paired differences against a baseline group with a 95 % t-interval (scipy), as summary.md,
summary.json and summary.png."""

from __future__ import annotations

import fnmatch
import json
import math
from pathlib import Path
from typing import Any

from litplug.sweep.spec import Cell, Report

CONFIDENCE = 0.95


def group_key(values: dict[str, str], replicate: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if k != replicate) or "all"


def labelled(cell: Cell, several: bool) -> dict[str, str]:
    """A cell's values, with its stage first when the report compares several stages."""
    return {"stage": cell.stage, **cell.values} if several else dict(cell.values)


def describe(xs: list[float]) -> dict[str, float]:
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    return {"mean": mean, "sd": sd, "n": n}


def t_interval(diffs: list[float]) -> dict[str, float]:
    """Mean paired difference and its two-sided 95 % t-interval (NaN bounds with fewer than two pairs)."""
    from scipy import stats

    d = describe(diffs)
    if d["n"] < 2:
        return {**d, "low": float("nan"), "high": float("nan")}
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, d["n"] - 1)) * d["sd"] / math.sqrt(d["n"])
    return {**d, "low": d["mean"] - half, "high": d["mean"] + half}


def collect(cells: list[Cell]) -> list[tuple[Cell, dict[str, float]]]:
    """The final metrics of every finished training cell."""
    out = []
    for cell in cells:
        results = cell.directory / "results.json"
        if results.is_file():
            out.append((cell, json.loads(results.read_text()).get("metrics", {})))
    return out


def summarise(cells: list[Cell], report: Report, expected: int) -> dict[str, Any]:
    finished = collect(cells)
    several = len({c.stage for c in cells}) > 1
    metrics = sorted({m for _, ms in finished for m in ms if any(fnmatch.fnmatchcase(m, p) for p in report.metrics)})
    groups: dict[str, list[tuple[Cell, dict[str, float]]]] = {}
    for cell, ms in finished:
        groups.setdefault(group_key(labelled(cell, several), report.replicate), []).append((cell, ms))
    table: dict[str, dict[str, Any]] = {}
    for group, members in groups.items():
        table[group] = {m: describe([ms[m] for _, ms in members if m in ms]) for m in metrics
                        if any(m in ms for _, ms in members)}
    baseline = None
    if report.baseline:  # the group whose values include the baseline's (e.g. {stage: ntp})
        wanted = report.baseline.items()
        baseline = next((g for g, members in groups.items()
                         if all(labelled(members[0][0], several).get(k) == v for k, v in wanted)), None)
    diffs: dict[str, dict[str, Any]] = {}
    if baseline in groups:
        base = {c.values.get(report.replicate): ms for c, ms in groups[baseline]}
        for group, members in groups.items():
            if group == baseline:
                continue
            diffs[group] = {}
            for m in metrics:
                pairs = [ms[m] - base[c.values.get(report.replicate)][m] for c, ms in members
                         if m in ms and m in base.get(c.values.get(report.replicate), {})]
                if pairs:
                    diffs[group][m] = t_interval(pairs)
    return {"stage": report.stage, "replicate": report.replicate, "baseline": baseline, "metrics": metrics,
            "cells_expected": expected, "cells_finished": len(finished), "groups": table, "differences": diffs}


def _fmt(x: float) -> str:
    return "–" if x != x else f"{x:.4g}"


def markdown(summary: dict[str, Any], name: str, command: str) -> str:
    lines = [f"# Sweep `{name}`", "", f"Stage `{summary['stage']}`: {summary['cells_finished']} of "
             f"{summary['cells_expected']} cells finished; replicates over `{summary['replicate']}`.",
             f"Regenerate: `{command}`", ""]
    for m in summary["metrics"]:
        lines += [f"## {m}", "", "| group | mean | sd | n |", "|---|---|---|---|"]
        for group, row in summary["groups"].items():
            if m in row:
                r = row[m]
                lines.append(f"| {group} | {_fmt(r['mean'])} | {_fmt(r['sd'])} | {r['n']} |")
        if summary["differences"]:
            lines += ["", f"Paired difference vs baseline `{summary['baseline']}` (95 % t-interval):", "",
                      "| group | mean diff | 95 % CI | n pairs |", "|---|---|---|---|"]
            for group, row in summary["differences"].items():
                if m in row:
                    r = row[m]
                    lines.append(f"| {group} | {_fmt(r['mean'])} | [{_fmt(r['low'])}, {_fmt(r['high'])}] | {r['n']} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], target: Path) -> None:
    """One panel per metric: each group's mean with its sd as an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = summary["metrics"] or ["(no metric)"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        groups = [g for g, row in summary["groups"].items() if m in row]
        means = [summary["groups"][g][m]["mean"] for g in groups]
        sds = [0.0 if summary["groups"][g][m]["sd"] != summary["groups"][g][m]["sd"] else summary["groups"][g][m]["sd"]
               for g in groups]
        ax.bar(range(len(groups)), means, yerr=sds, capsize=4)
        ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=7)
        ax.set_title(m, fontsize=8)
    fig.tight_layout()
    fig.savefig(target, dpi=100)
    plt.close(fig)


def write(summary: dict[str, Any], sweep_dir: Path, name: str, command: str) -> list[Path]:
    files = [sweep_dir / "summary.json", sweep_dir / "summary.md", sweep_dir / "summary.png"]
    files[0].write_text(json.dumps(summary, indent=2))
    files[1].write_text(markdown(summary, name, command))
    plot(summary, files[2])
    return files
