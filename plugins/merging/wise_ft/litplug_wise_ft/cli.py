"""``litplug merge wise-ft``: one interpolation, or an α sweep scored by pass@k.

    litplug merge wise-ft --early A --late B --alpha 0.5 --out C
    litplug merge wise-ft --early A --late B --alphas 0:1:0.1 --eval arithmetic --n 16 --k 1,4,16 --out D

Bad input (α outside [0, 1] without --allow-extrapolation, a missing or incompatible checkpoint, an
existing --out without --overwrite) raises ConfigError: one message, exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path
from typing import Any

import yaml

from litplug.api import ConfigError
from litplug_wise_ft.interpolate import DEFAULT_MAX_SHARD_SIZE, interpolate_dirs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="litplug merge wise-ft",
        description="WiSE-FT: theta = (1 - alpha) * theta_early + alpha * theta_late, tensor by tensor.")
    p.add_argument("--early", required=True, type=Path, help="early checkpoint (HF dir), the alpha = 0 end")
    p.add_argument("--late", required=True, type=Path, help="late checkpoint (HF dir), the alpha = 1 end")
    p.add_argument("--out", required=True, type=Path,
                   help="the merged model dir (with --alpha) or the sweep report dir (with --alphas)")
    p.add_argument("--alpha", type=float, help="mixing weight of the late checkpoint (default 0.5)")
    p.add_argument("--alphas", help="sweep: START:STOP:STEP (ends included) or a comma list, e.g. 0:1:0.1")
    p.add_argument("--allow-extrapolation", action="store_true", help="accept alpha outside [0, 1]")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out once the new one is complete")
    p.add_argument("--max-shard-size", default=DEFAULT_MAX_SHARD_SIZE,
                   help="largest output weight file, e.g. 2GB (bounds peak memory; default %(default)s)")
    s = p.add_argument_group("sweep (with --alphas)")
    s.add_argument("--eval", metavar="TASK", help="synthetic task (or a data source of --config) to score")
    s.add_argument("--task-params", help="task parameters as a YAML mapping, e.g. '{digits: 3}'")
    s.add_argument("--config", help="run config giving the task's parameters and the generation plugins "
                                    "(default: config.yaml beside --late when --late is a run's export/)")
    s.add_argument("--n", type=int, default=16, help="samples per prompt (default %(default)s)")
    s.add_argument("--k", default="1,4,16", help="pass@k values, comma separated (default %(default)s)")
    s.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default %(default)s)")
    s.add_argument("--num-examples", type=int, default=64, help="prompts scored (default %(default)s)")
    s.add_argument("--split", default="test", choices=["train", "validation", "test"])
    s.add_argument("--seed", type=int, default=0, help="sampling seed, the same for every alpha")
    s.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default %(default)s)")
    s.add_argument("--max-new-tokens", type=int, help="default: the longest reference answer + 1")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    s.add_argument("--keep-models", action="store_true", help="keep each merged model under OUT/models/")
    s.add_argument("--select", help="metric that picks the headline best alpha (default: pass@<largest k>)")
    s.add_argument("--tracking-uri", help="MLflow URI (default: the late model's run, else OUT/../mlflow.db)")
    s.add_argument("--experiment", default="litplug", help="MLflow experiment (default %(default)s)")
    s.add_argument("--no-mlflow", action="store_true", help="do not log the sweep to MLflow")
    return p


def check_alpha(alpha: float, allow_extrapolation: bool, flag: str) -> None:
    if math.isnan(alpha) or math.isinf(alpha):
        raise ConfigError(f"{flag} must be a finite number (got {alpha}).")
    if not allow_extrapolation and not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"{flag} {alpha:g} is outside [0, 1]: WiSE-FT interpolates between the early (0) and "
                          "late (1) checkpoints. Pass --allow-extrapolation to move past an endpoint on purpose.")


def _task_params(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--task-params is not valid YAML: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--task-params must be a mapping such as '{{digits: 3}}' (got {text!r}).")
    return value


SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}


def _shard_size(text: str) -> int:
    """Bytes from ``2GB`` / ``500MB`` / ``1048576`` (decimal units, as save_pretrained reads them)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?B)?\s*", text.upper())
    if match is None or int(float(match.group(1)) * SIZE_UNITS[match.group(2) or ""]) < 1:
        raise ConfigError(f"--max-shard-size '{text}' is not a positive size such as 500MB or 2GB.")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2) or ""])


def _merge(args: argparse.Namespace) -> int:
    if args.eval is not None:
        raise ConfigError("--eval scores an α sweep; give --alphas (e.g. --alphas 0:1:0.1, or --alphas 0.5).")
    alpha = 0.5 if args.alpha is None else args.alpha
    check_alpha(alpha, args.allow_extrapolation, "--alpha")
    record = interpolate_dirs(args.early, args.late, alpha, args.out, args.overwrite, _shard_size(args.max_shard_size))
    print(f"Merged {record['num_tensors']} tensors: (1 - {alpha:g}) * {args.early} + {alpha:g} * {args.late}")
    if record["non_float_tensors_differing"]:
        print(f"note: non-float tensors differ between the models and were copied from the nearer endpoint: "
              f"{', '.join(record['non_float_tensors_differing'])}")
    print(f"Wrote {args.out} (loads with AutoModelForCausalLM.from_pretrained)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from litplug_wise_ft.report import default_tracking_uri, log_to_mlflow
    from litplug_wise_ft.sweep import SweepSpec, parse_alphas, parse_ks, resolve_target, run_sweep

    if args.alpha is not None:
        raise ConfigError("Give either --alpha (one merged model) or --alphas (a sweep), not both.")
    if args.eval is None:
        raise ConfigError("--alphas sweeps α and scores each model; name the task to score with --eval TASK.")
    alphas = parse_alphas(args.alphas)
    for alpha in alphas:
        check_alpha(alpha, args.allow_extrapolation, "--alphas value")
    target = resolve_target(args.eval, _task_params(args.task_params), args.config, args.late)
    spec = SweepSpec(
        early=args.early, late=args.late, out=args.out, alphas=alphas, target=target, n=args.n, ks=parse_ks(args.k),
        temperature=args.temperature, num_examples=args.num_examples, split=args.split, seed=args.seed,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, device=args.device,
        keep_models=args.keep_models, overwrite=args.overwrite, select=args.select,
        max_shard_size=_shard_size(args.max_shard_size),
    )
    result = run_sweep(spec)
    print(f"Best α by {result['select']}: {result['best_alpha']:g} "
          f"({result['best'][result['select']]['value']:.4f}); table: {args.out / 'sweep.md'}, plot: "
          f"{args.out / 'sweep.png'}")
    if not args.no_mlflow:
        uri, parent = default_tracking_uri(args.late, args.out)
        run_id = log_to_mlflow(result, args.out, args.tracking_uri or uri, args.experiment, parent)
        print(f"Logged to MLflow run {run_id} in {args.tracking_uri or uri}")
    return 0


def main(argv: list[str]) -> int:
    """Entry of ``litplug merge wise-ft ARGS``; returns the exit code."""
    args = build_parser().parse_args(argv)
    return _sweep(args) if args.alphas is not None else _merge(args)
