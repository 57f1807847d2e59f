"""Pilot curves for the law: read from finished litplug runs (their MLflow history) or CSV files.

A run gives one curve: at every validation step, T (tokens so far), the domain loss on its training
split (``val/<domain>/train_split_loss``, L_train) and on held-out data (``val/<domain>/loss``, L_test).
A CSV file has columns ``delta,tokens,train_loss,test_loss`` (and optionally ``run``), one row a point.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import yaml

from litplug.api import ConfigError
from litplug_spt.law import Curve
from litplug_spt.names import TOKENS_METRIC, train_split_loss_key, val_loss_key

CSV_COLUMNS = ("delta", "tokens", "train_loss", "test_loss")


def load_curves(inputs: list[str]) -> tuple[list[Curve], str | None]:
    """Curves from run directories and CSV files; also the tracking URI of the first run, if any."""
    curves: list[Curve] = []
    uri = None
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            curve, run_uri = curve_from_run(path)
            curves.append(curve)
            uri = uri or run_uri
        elif path.is_file() and path.suffix.lower() == ".csv":
            curves += curves_from_csv(path)
        else:
            raise ConfigError(f"fit-law input '{item}' is neither a finished litplug run directory nor a .csv file.")
    return curves, uri


def curve_from_run(run_dir: Path) -> tuple[Curve, str]:
    config_file, id_file = run_dir / "config.yaml", run_dir / "mlflow_run.json"
    if not config_file.is_file() or not id_file.is_file():
        raise ConfigError(f"fit-law: '{run_dir}' is not a tracked litplug run (it needs config.yaml and "
                          "mlflow_run.json; train the pilot runs with tracking.enabled=true).")
    config = yaml.safe_load(config_file.read_text()) or {}
    spt = (config.get("plugins") or {}).get("spt")
    if not isinstance(spt, dict) or spt.get("delta") is None:
        raise ConfigError(f"fit-law: run '{run_dir}' has no plugins.spt.delta in its config.yaml, so its curve has "
                          "no delta. Pilot runs must be trained with the spt plugin (delta=0 for standard "
                          "pretraining).")
    domain = spt.get("domain", "domain")
    info = json.loads(id_file.read_text())
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=info["tracking_uri"])

    def history(key: str) -> dict[int, float]:
        try:
            return {m.step: m.value for m in client.get_metric_history(info["run_id"], key)}
        except mlflow.exceptions.MlflowException as exc:
            raise ConfigError(f"fit-law: cannot read the MLflow history of run '{run_dir}' (run id "
                              f"{info['run_id']} in {info['tracking_uri']}): {exc.message}") from None

    test, train, tokens = history(val_loss_key(domain)), history(train_split_loss_key(domain)), history(TOKENS_METRIC)
    steps = sorted(set(test) & set(train))
    if not steps or len(tokens) < 2:
        raise ConfigError(f"fit-law: run '{run_dir}' has no {val_loss_key(domain)} / "
                          f"{train_split_loss_key(domain)} / {TOKENS_METRIC} history in {info['tracking_uri']} "
                          "(was it trained with plugins.spt and trainer.val_check_interval set?).")
    # T grows linearly with the logged step; metrics logged at the same step share its T.
    slope, intercept = np.polyfit(sorted(tokens), [tokens[s] for s in sorted(tokens)], 1)
    return Curve(delta=float(spt["delta"]), tokens=np.array([slope * s + intercept for s in steps]),
                 train_loss=np.array([train[s] for s in steps]), test_loss=np.array([test[s] for s in steps]),
                 label=run_dir.name), info["tracking_uri"]


def curves_from_csv(path: Path) -> list[Curve]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"fit-law: '{path}' lacks column(s) {', '.join(missing)} (needs "
                              f"{', '.join(CSV_COLUMNS)}; a curve without a delta cannot be fitted).")
        rows = list(reader)
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for number, row in enumerate(rows, start=2):
        try:
            float(row["delta"]), float(row["tokens"]), float(row["train_loss"]), float(row["test_loss"])
        except (TypeError, ValueError):
            raise ConfigError(f"fit-law: '{path}' line {number} has a missing or non-numeric value in "
                              f"{', '.join(CSV_COLUMNS)}: {row}.") from None
        groups.setdefault((row.get("run") or "", row["delta"]), []).append(row)
    return [Curve(delta=float(d), tokens=np.array([float(r["tokens"]) for r in g]),
                  train_loss=np.array([float(r["train_loss"]) for r in g]),
                  test_loss=np.array([float(r["test_loss"]) for r in g]), label=f"{path.name}:{run or d}")
            for (run, d), g in groups.items()]


def write_csv(curves: list[Curve], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", *CSV_COLUMNS])
        for c in curves:
            for t, a, b in zip(c.tokens, c.train_loss, c.test_loss):
                writer.writerow([c.label, c.delta, float(t), float(a), float(b)])
