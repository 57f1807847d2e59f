"""What a sweep leaves behind: ``sweep.json`` (everything), ``sweep.md`` (the table), ``sweep.png``
(metric-vs-α curves), and the same three in MLflow with one metric step per α; plus ``results.json``
(``{"metrics": {...}}``, the form ``litplug sweep`` reports), so an α sweep can be a cell of a sweep file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from litplug.api import __version__ as litplug_version
from litplug_wise_ft.scoring import mlflow_key

METRIC_ORDER = ("majority_vote", "greedy", "var_rho")
FILES = ("sweep.json", "sweep.md", "sweep.png")
MLFLOW_BATCH = 1000  # MLflow accepts at most 1000 metrics per log_batch call


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    """pass@k columns by k, then majority vote, greedy exact match and Var(ρ)."""
    keys = [k for k in rows[0] if k != "alpha"]
    passes = sorted((k for k in keys if k.startswith("pass@")), key=lambda k: int(k[5:]))
    return passes + [k for k in METRIC_ORDER if k in keys]


def best_by_metric(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """For each accuracy metric, the α that maximises it (ties: the smallest α)."""
    best = {}
    for key in metric_names(rows):
        if key == "var_rho":
            continue
        row = max(rows, key=lambda r: (r[key], -r["alpha"]))
        best[key] = {"alpha": row["alpha"], "value": row[key]}
    return best


def markdown_table(result: dict[str, Any]) -> str:
    rows = result["rows"]
    names = metric_names(rows)
    lines = [
        f"# WiSE-FT α sweep: {result['task']} ({result['split']} split)",
        "",
        f"θ(α) = (1−α)·θ_early + α·θ_late; early = `{result['early']}`, late = `{result['late']}`.",
        f"{result['num_examples']} prompts, n = {result['n']} samples each at temperature {result['temperature']}, "
        f"seed {result['seed']}; greedy = exact match of the greedy answer; var_rho = Var over prompts of the "
        "per-prompt solve rate (the variance term of pass@k).",
        "",
        "| α | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for row in rows:
        lines.append(f"| {row['alpha']:g} | " + " | ".join(f"{row[k]:.4f}" for k in names) + " |")
    lines += ["", "| metric | best α | value |", "|---|---|---|"]
    for key, best in result["best"].items():
        lines.append(f"| {key} | {best['alpha']:g} | {best['value']:.4f} |")
    lines += ["", f"Best α by {result['select']}: **{result['best_alpha']:g}**.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    alphas = [r["alpha"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for key in metric_names(rows):
        if key == "var_rho":
            continue
        style = {"majority_vote": "--", "greedy": ":"}.get(key, "-")
        ax.plot(alphas, [r[key] for r in rows], style, marker="o", markersize=3, label=key)
    ax.set_xlabel("α   (0 = early checkpoint, 1 = late checkpoint)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"WiSE-FT: {result['task']} {result['split']}, n={result['n']}, T={result['temperature']:g}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def results_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The flat metrics of ``results.json``: ``<split>/alpha_<α>/<metric>`` for every α, and, when the
    sweep scores a single α (one model), also ``<split>/<metric>``. No "best α" is in it: choosing α
    after looking at the test split is what a pre-registered α avoids."""
    split = result["split"]
    rows = result["rows"]
    names = metric_names(rows)
    metrics = {f"{split}/alpha_{row['alpha']:g}/{k}": float(row[k]) for row in rows for k in names}
    if len(rows) == 1:
        metrics.update({f"{split}/{k}": float(rows[0][k]) for k in names})
    metrics[f"{split}/num_examples"] = float(result["num_examples"])
    metrics[f"{split}/n"] = float(result["n"])
    return metrics


def write_reports(result: dict[str, Any], folder: Path) -> None:
    (folder / "results.json").write_text(json.dumps({"metrics": results_metrics(result)}, indent=2))
    (folder / "sweep.json").write_text(json.dumps(result, indent=2))
    (folder / "sweep.md").write_text(markdown_table(result))
    plot(result, folder / "sweep.png")


def default_tracking_uri(late: Path, out: Path) -> tuple[str, str | None]:
    """(tracking URI, parent run id): the late model's run when it has one, else a sqlite file beside
    ``out`` (the same convention as ``litplug train``)."""
    run_file = late.resolve().parent / "mlflow_run.json"
    if run_file.is_file():
        info = json.loads(run_file.read_text())
        return info["tracking_uri"], info.get("run_id")
    return f"sqlite:///{out.resolve().parent / 'mlflow.db'}", None


def _run_exists(client: Any, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


def log_to_mlflow(result: dict[str, Any], folder: Path, tracking_uri: str, experiment: str,
                  parent_run_id: str | None = None) -> str:
    """One MLflow run per sweep (nested under the late model's training run when known): params, one
    metric step per α (``sweep/<metric>`` with ``sweep/alpha`` at the same step; ``pass@k`` is spelled
    ``pass_at_k`` since MLflow forbids '@'), the best α, and the three report files as artifacts.
    Returns the run id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from litplug.api import experiment_id as find_or_create

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = find_or_create(client, experiment, tracking_uri)
    tags = {"litplug.version": litplug_version, "litplug.merge": "wise-ft"}
    if parent_run_id and _run_exists(client, parent_run_id):
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=f"wise-ft-sweep-{result['task']}", tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    names = metric_names(result["rows"])
    metrics = [Metric("sweep/alpha", row["alpha"], now, i) for i, row in enumerate(result["rows"])]
    metrics += [Metric(f"sweep/{mlflow_key(k)}", row[k], now, i) for i, row in enumerate(result["rows"]) for k in names]
    metrics += [Metric(f"best/{mlflow_key(k)}", b["value"], now, 0) for k, b in result["best"].items()]
    metrics += [Metric(f"best_alpha/{mlflow_key(k)}", b["alpha"], now, 0) for k, b in result["best"].items()]
    params = [Param(k, str(result[k])) for k in ("early", "late", "task", "split", "n", "k", "temperature", "seed",
                                                  "alphas", "num_examples", "select")]
    params.append(Param("task_params", json.dumps(result["task_params"])))
    client.log_batch(run_id, params=params)
    for start in range(0, len(metrics), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MLFLOW_BATCH])
    for name in FILES:
        client.log_artifact(run_id, str(folder / name))
    client.set_terminated(run_id)
    return run_id
