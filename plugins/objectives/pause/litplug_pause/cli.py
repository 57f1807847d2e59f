"""``litplug pause-eval RUN_DIR --inference-pauses M_INF --out FILE [key=value ...]``: exact match of a
finished run with M_INF pauses appended to every prompt.

It is ``litplug eval RUN_DIR plugins.pause.inference_pauses=M_INF``, but it writes the sweep's result
format, ``{"metrics": {"eval/<source>/exact_match": ..., ...}, "inference_pauses": M_INF}``, so a
``litplug sweep`` stage of this verb (``--out {dir}/results.json``) is reported like a training cell: each
M_inf is its own group, paired by seed with any other group of the report. Nothing is logged to MLflow
(the run's own ``eval/*`` metrics, taken at its M_inf, stay as they are).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from litplug.api import ConfigError


def add_parser(subparsers: Any) -> None:
    """Add the verb to ``litplug``'s argparse sub-parsers action."""
    p = subparsers.add_parser(
        "pause-eval", help="pause tokens: exact match of a finished run at M_inf pauses, as sweep results",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="RUN_DIR")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--inference-pauses", type=int, required=True, metavar="M_INF",
                   help="pauses appended to every prompt (sets plugins.pause.inference_pauses)")
    p.add_argument("--out", required=True, help="write the results JSON here (e.g. {dir}/results.json)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from litplug.api import RunDir, build_module, context, evaluate_all, setup_run, source_specs

    path = Path(args.target)
    if not path.is_dir() or not RunDir(path).is_finished():
        raise ConfigError(f"'{path}' is not a finished litplug run (it needs config.yaml and export/).")
    if args.inference_pauses < 0:
        raise ConfigError(f"--inference-pauses (M_inf) must be >= 0 (got {args.inference_pauses}).")
    export = (path / "export").resolve()
    run = setup_run(str(path / "config.yaml"), [f"model.path={export}", f"data.tokenizer={export}",
                                                *args.overrides,
                                                f"plugins.pause.inference_pauses={args.inference_pauses}"])
    if not run.cfg.plugins.get("pause", {}).get("enabled", True):
        raise ConfigError(f"'{path}' ran without the pause plugin (plugins.pause.enabled=false), so M_inf "
                          "pauses cannot be appended; evaluate it with `litplug eval`.")
    ctx = context(build_module(run), "validate")
    results = evaluate_all(ctx.model, ctx.tokenizer, ctx.hooks, source_specs(ctx.config), ctx.config)
    if not results:
        raise ConfigError("None of the run's data sources has a prompt/answer form, so there is nothing to "
                          "evaluate by exact match.")
    metrics = {f"eval/{src}/{k.replace('@', '_at_')}": float(v) for src, res in results.items()
               for k, v in res.items() if isinstance(v, (int, float))}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"metrics": metrics, "inference_pauses": args.inference_pauses,
                               "target": str(path.resolve())}, indent=2))
    for name, value in metrics.items():
        print(f"{name} = {value:.4f}")
    print(f"Results (M_inf={args.inference_pauses}) written to {out}")
    return 0
