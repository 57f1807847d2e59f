"""``litplug quant-report RUN_DIR_or_MODEL_DIR [key=value ...]``: the quantization report of one model.

A finished run directory brings its own config (data, eval settings) and its exported model; a plain HF
model directory (e.g. a run's ``export/``) is evaluated on the data of ``--config`` (default: litplug's
defaults) plus any overrides.

Activations are quantised per token on the fly (``token``: settings ``wXaY``) and/or with one static scale
per layer input calibrated on the first ``--calib-batches`` training batches (``tensor``: settings
``wXaY-tensor``, the paper's PTQ setting). ``--results`` writes the flat ``{"metrics": {...}}`` a sweep reads,
including each setting's drop from the same model's full-precision score.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from litplug.api import ConfigError

DEFAULT_BITS = "w4a4,w8a8"
DEFAULT_ACT_QUANT = "token,tensor"


def add_parser(subparsers: Any) -> None:
    """Add the verb to ``litplug``'s argparse sub-parsers action."""
    p = subparsers.add_parser(
        "quant-report", help="S2D: spectra, activation outliers and metrics after simulated W4A4/W8A8",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="RUN_OR_MODEL_DIR")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--config", help="for a model directory: a run config naming the data (default: defaults)")
    p.add_argument("--bits", default=DEFAULT_BITS, help=f"simulated settings, comma-separated (default {DEFAULT_BITS})")
    p.add_argument("--act-quant", default=DEFAULT_ACT_QUANT, help="activation schemes, comma-separated: token "
                   "(dynamic per-token scales), tensor (static per-tensor scales from calibration; setting names "
                   f"get '-tensor') (default {DEFAULT_ACT_QUANT})")
    p.add_argument("--calib-batches", type=int, default=8, help="training batches the static per-tensor ranges "
                   "are calibrated on (default 8)")
    p.add_argument("--layers", action="append", help="glob over linear-layer names to quantise and report "
                   "(repeatable; default: every linear layer but the output head)")
    p.add_argument("--max-batches", type=int, default=8, help="validation batches per source (default 8)")
    p.add_argument("--top", type=int, default=3, help="singular values reported per layer (default 3)")
    p.add_argument("--no-generate", action="store_true", help="skip exact-match generation; losses only")
    p.add_argument("--out", help="write the JSON here (default: RUN_DIR/quant_report.json for a run directory)")
    p.add_argument("--results", help="also write {\"metrics\": {flat name: value}} here (e.g. a sweep cell's "
                   "{dir}/results.json): quant/<setting>/<source>/exact_match, .../exact_match_drop (FP - setting), "
                   ".../val_loss, .../val_loss_rise, quant/<summary key>")
    p.set_defaults(func=run_command)


def resolve_target(target: str, config: str | None, scratch: str) -> tuple[str | None, list[str], bool]:
    """(config path, overrides, is_run_dir) for a run directory or an HF model directory."""
    path = Path(target)
    if (path / "config.yaml").is_file() and (path / "export").is_dir():
        export = (path / "export").resolve()
        if config is not None:
            raise ConfigError(f"--config is for model directories; '{path}' is a run directory with its own config.")
        return str(path / "config.yaml"), [f"model.path={export}", f"data.tokenizer={export}",
                                           f"run.output_dir={path.resolve().parent}", f"run.name={path.name}"], True
    if (path / "config.json").is_file():
        model = path.resolve()
        return config, [f"model.path={model}", f"data.tokenizer={model}", f"run.output_dir={scratch}"], False
    raise ConfigError(f"'{target}' is neither a finished litplug run (config.yaml + export/) nor an HF model "
                      "directory (config.json). Give a run directory or its export/ folder.")


def run_command(args: argparse.Namespace) -> int:
    from litplug.api import build_module, context, setup_run
    from litplug_s2d.layers import linear_layers, match_layers
    from litplug_s2d.quant import parse_specs
    from litplug_s2d.report import build_report, flat_metrics

    specs = parse_specs(args.bits, args.act_quant)
    for flag, value in (("--max-batches", args.max_batches), ("--top", args.top),
                        ("--calib-batches", args.calib_batches)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value}).")
    with tempfile.TemporaryDirectory(prefix="litplug-quant-report-") as scratch:
        config_path, overrides, is_run = resolve_target(args.target, args.config, scratch)
        run = setup_run(config_path, [*overrides, *args.overrides])
        ctx = context(build_module(run), "validate")
        names = match_layers(ctx.model, args.layers or ["*"], key="--layers")
        layers = {n: m for n, m in linear_layers(ctx.model).items() if n in names}
        batches = {}
        for name, loader in zip(run.datamodule.names, run.datamodule.val_dataloader()):
            batches[name] = [b for _, b in zip(range(args.max_batches), loader)]
        calibration = None
        if any(s.act_scheme == "tensor" for s in specs):
            calibration = [b for _, b in zip(range(args.calib_batches), run.datamodule.train_dataloader())]
        report = build_report(ctx, run.sources, layers, batches, specs, args.top, not args.no_generate, calibration)
    report = {"target": str(Path(args.target).resolve()), "settings": ["fp", *(s.name for s in specs)], **report}
    out = Path(args.out) if args.out else (Path(args.target) / "quant_report.json" if is_run else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
    if args.results:
        results = Path(args.results)
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps({"metrics": flat_metrics(report)}, indent=2))
    print(format_report(report))
    for path in (out, args.results):
        if path is not None:
            print(f"Report written to {path}")
    if is_run:
        _log_to_mlflow(Path(args.target), report, out)
    return 0


def format_report(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [f"sigma_max {s['sigma_max']:.4g} (mean over layers {s['sigma_max_mean']:.4g}); output outlier ratio "
             f"max|a|/std {s['outlier_ratio_max']:.4g} (mean {s['outlier_ratio_mean']:.4g}); input outlier ratio "
             f"{s['input_outlier_ratio_max']:.4g} (mean {s['input_outlier_ratio_mean']:.4g})"]
    for setting, metrics in report["metrics"].items():
        lines.append(f"{setting:>11}: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items())))
    return "\n".join(lines)


def _log_to_mlflow(run_dir: Path, report: dict[str, Any], out: Path | None) -> None:
    """Attach the report to the run's MLflow run, when it has one."""
    run_file = run_dir / "mlflow_run.json"
    if not run_file.is_file():
        return
    import mlflow

    info = json.loads(run_file.read_text())
    client = mlflow.MlflowClient(tracking_uri=info["tracking_uri"])
    for key, value in report["summary"].items():
        client.log_metric(info["run_id"], f"quant/{key}", value)
    for setting, metrics in report["metrics"].items():
        for key, value in metrics.items():
            client.log_metric(info["run_id"], f"quant/{setting}/{key}", value)
    if out is not None:
        client.log_artifact(info["run_id"], str(out))
