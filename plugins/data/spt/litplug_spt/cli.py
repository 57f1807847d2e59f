"""``litplug spt fit-law RUNS... --out DIR``: fit the overfitting scaling law to pilot runs,
recommend delta for token budgets, save law.json + law.png + curves.csv, log them to MLflow."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litplug.api import ConfigError

if TYPE_CHECKING:  # the fitter's imports (scipy, matplotlib) load only when the verb runs
    from litplug_spt.law import Curve


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("spt", help="specialized pretraining tools (litplug-spt)")
    verbs = parser.add_subparsers(dest="spt_verb", metavar="COMMAND")
    fit = verbs.add_parser("fit-law", help="fit the overfitting scaling law to pilot runs and recommend delta",
                           description=__doc__)
    fit.add_argument("inputs", nargs="+", metavar="RUN_OR_CSV",
                     help="finished pilot runs (trained with plugins.spt) or CSV files (delta,tokens,train_loss,"
                          "test_loss)")
    fit.add_argument("--out", required=True, help="output directory")
    fit.add_argument("--budget", type=float, action="append", default=[],
                     help="token budget T to recommend delta for (repeatable; default: 1x, 10x, 100x the "
                          "longest pilot run)")
    fit.add_argument("--delta-max", type=float, default=None,
                     help="largest delta to recommend (default: the largest pilot delta: no extrapolation)")
    fit.add_argument("--fit-delta-max", type=float, default=None,
                     help="fit only on pilot runs with delta <= this (to check forecasts on the others)")
    fit.add_argument("--fit-delta-min", type=float, default=None,
                     help="fit only on pilot runs with delta >= this (e.g. to leave out runs at delta = 0)")
    fit.add_argument("--fit-min-tokens", type=float, default=0.0,
                     help="fit only points with T >= this (leave out the early, warmup-dominated validations)")
    fit.add_argument("--token-unit", type=float, default=1e6, help="T is fitted in units of this many tokens")
    fit.add_argument("--tracking-uri", default=None,
                     help="MLflow tracking URI (default: the first run's; for CSV input sqlite:///OUT/mlflow.db)")
    fit.add_argument("--experiment", default="litplug-spt-fit-law", help="MLflow experiment name")
    fit.add_argument("--no-mlflow", action="store_true", help="write files only")
    fit.set_defaults(func=fit_law_command)
    from litplug_spt.finetune import add_parser

    add_parser(verbs)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def fit_law_command(args: argparse.Namespace) -> int:
    from litplug_spt.curves import load_curves, write_csv
    from litplug_spt.law import fit_law, recommend_delta
    from litplug_spt.plot import plot_fit

    if args.token_unit <= 0:
        raise ConfigError(f"--token-unit must be positive (got {args.token_unit}).")
    curves, run_uri = load_curves(args.inputs)
    fitted = [after_tokens(c, args.fit_min_tokens) for c in curves
              if (args.fit_delta_max is None or c.delta <= args.fit_delta_max)
              and (args.fit_delta_min is None or c.delta >= args.fit_delta_min)]
    fit = fit_law(fitted, token_unit=args.token_unit)
    delta_max = args.delta_max if args.delta_max is not None else max(c.delta for c in fitted)
    if not 0 < delta_max <= 1:
        raise ConfigError(f"--delta-max must be in (0, 1] (got {delta_max}).")
    longest = max(float(c.tokens.max()) for c in curves)
    budgets = args.budget or [longest, 10 * longest, 100 * longest]
    if any(b <= 0 for b in budgets):
        raise ConfigError(f"--budget values must be positive token counts (got {budgets}).")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    recommendations = []
    for budget in budgets:
        delta, loss = recommend_delta(fit.law, budget, delta_max)
        recommendations.append({"tokens": budget, "delta": delta, "predicted_test_loss": loss})
    fitted_labels = {c.label for c in fitted}
    held_out = [{"label": c.label, "delta": c.delta,
                 "rmse_test": float(((fit.law.test_loss(c.tokens, c.delta) - c.test_loss) ** 2).mean() ** 0.5)}
                for c in (after_tokens(c, args.fit_min_tokens) for c in curves) if c.label not in fitted_labels]
    report = {"law": fit.law.to_dict(), "rmse_train": fit.rmse_train, "rmse_gap": fit.rmse_gap,
              "rmse_test": fit.rmse_test, "per_delta": {str(k): v for k, v in fit.per_delta.items()},
              "fitted_runs": [c.label for c in fitted], "fitted_points": sum(len(c.tokens) for c in fitted),
              "forecast_runs": held_out,
              "delta_max": delta_max, "recommendations": recommendations}
    (out / "law.json").write_text(json.dumps(report, indent=2))
    write_csv(curves, out / "curves.csv")
    png = plot_fit(fit.law, curves, budgets, delta_max, out / "law.png")
    print(f"fit-law: {len(fitted)} pilot curve(s) at delta = {sorted({c.delta for c in fitted})}; "
          f"RMSE L_train {fit.rmse_train:.4f}, L_gap {fit.rmse_gap:.4f}, L_test {fit.rmse_test:.4f}")
    for r in held_out:
        print(f"  forecast for {r['label']} (delta={r['delta']:g}, not fitted): RMSE L_test {r['rmse_test']:.4f}")
    for r in recommendations:
        print(f"  budget T={r['tokens']:.4g} tokens: recommended delta = {r['delta']:.4f} "
              f"(predicted held-out domain loss {r['predicted_test_loss']:.4f})")
    print(f"Wrote {out / 'law.json'}, {png}, {out / 'curves.csv'}")
    if not args.no_mlflow:
        uri = args.tracking_uri or run_uri or f"sqlite:///{out.resolve() / 'mlflow.db'}"
        run_id = log_to_mlflow(uri, args.experiment, report, out)
        print(f"Logged to MLflow run {run_id} in {uri}")
    return 0


def after_tokens(curve: Curve, min_tokens: float) -> Curve:
    from litplug_spt.law import Curve

    keep = curve.tokens >= min_tokens
    return Curve(curve.delta, curve.tokens[keep], curve.train_loss[keep], curve.test_loss[keep], curve.label)


def log_to_mlflow(uri: str, experiment: str, report: dict, out: Path) -> str:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    from litplug.api import experiment_id

    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(experiment_id(client, experiment, uri), run_name="spt-fit-law",
                            tags={"litplug.plugin.spt": "fit-law"})
    run_id = run.info.run_id
    for key, value in report["law"].items():
        client.log_param(run_id, f"law.{key}", value)
    for key in ("rmse_train", "rmse_gap", "rmse_test"):
        client.log_metric(run_id, key, report[key])
    for i, r in enumerate(report["recommendations"]):
        client.log_metric(run_id, "recommended_delta", r["delta"], step=i)
        client.log_metric(run_id, "recommended_delta_tokens", r["tokens"], step=i)
    for name in ("law.png", "law.json", "curves.csv"):
        client.log_artifact(run_id, str(out / name))
    client.set_terminated(run_id)
    return run_id
