"""The ``litplug sweep`` verb: plan the cells, run them on the chosen engine, track them as one MLflow
parent run with a child run per cell, and write the summary. Re-running the same command skips the
finished cells and resumes the interrupted ones (each through litplug's own bit-exact resume)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from litplug.errors import ConfigError, RunFailure
from litplug.sweep import report as report_mod
from litplug.sweep.launch import LocalPool, SubmititLauncher, command, is_finished, run_cells
from litplug.sweep.spec import SweepSpec, is_sweep_file, load_sweep_file, plan, quick_spec

PARENT_ENV = "LITPLUG_SWEEP_PARENT_RUN_ID"
SWEEP_ENV = "LITPLUG_SWEEP"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run a grid of runs (seeds, settings, stages) and summarise it with CIs",
                       description="litplug sweep CONFIG key=a,b key=range(0,3) ... | litplug sweep SWEEP.yaml")
    p.add_argument("target", metavar="CONFIG|SWEEP", nargs="?")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--workers", type=int, default=1, help="cells run at once (default 1)")
    p.add_argument("--launcher", choices=["local", "submitit"], default="local",
                   help="local: a process pool on this machine; submitit: jobs through submitit")
    p.add_argument("--cluster", default="slurm", help="submitit cluster: slurm (default) or local")
    p.add_argument("--launcher-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit parameter, e.g. slurm_partition=gpu, timeout_min=120, gpus_per_node=1")
    p.add_argument("--name", help="the sweep's name (default: from the config and the grid)")
    p.add_argument("--baseline", action="append", default=[], metavar="KEY=VALUE",
                   help="the group paired differences are computed against (quick form)")
    p.add_argument("--metric", action="append", default=[], metavar="PATTERN",
                   help="metrics to report, fnmatch patterns (default: val/*/loss, eval/*/exact_match, pass@k)")
    p.add_argument("--dry-run", action="store_true", help="print each cell's command; run and write nothing")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="re-run cells that finished (default: skip them)")
    p.add_argument("--report-only", action="store_true", help="rebuild the summary from the finished cells")
    p.set_defaults(func=sweep_command)


def load_spec(args: argparse.Namespace) -> SweepSpec:
    target, overrides = args.target, list(args.overrides)
    if target is not None and "=" in target and not Path(target).exists():
        target, overrides = None, [target, *overrides]  # only overrides: the embedded defaults
    if target is not None and not Path(target).is_file():
        raise ConfigError(f"'{target}' is neither a config file nor a sweep file.")
    if target is not None and is_sweep_file(target):
        spec = load_sweep_file(target, overrides)
    else:
        spec = quick_spec(target, overrides, args.baseline, args.metric)
    if args.name:
        spec.name = args.name
    return spec


def base_config(spec: SweepSpec) -> Any:
    """The first training stage's config (with its fixed overrides): where runs go and how they are tracked."""
    from litplug.config import load_config

    stage = next((s for s in spec.stages if s.verb == "train"), None)
    if stage is None:
        return load_config(None, [])
    fixed = [o for o in stage.overrides if "{" not in o.split("=", 1)[1]]
    return load_config(stage.config, fixed)


def sweep_command(args: argparse.Namespace) -> int:
    from litplug.config import load_config
    from litplug.tracking import tracking_uri

    spec = load_spec(args)
    base = base_config(spec)
    uri = tracking_uri(base) if base.tracking.enabled else None
    sweep_dir = Path(base.run.output_dir).resolve() / "sweeps" / spec.name
    stages = plan(spec, sweep_dir, uri)
    cells = [c for cs in stages for c in cs]
    for cell in cells:  # every training cell's config is valid before anything runs (exit 2 otherwise)
        if cell.verb == "train" and not cell.needs:
            config = cell.argv[0] if cell.argv and "=" not in cell.argv[0] else None
            load_config(config, cell.argv[1:] if config else cell.argv)
    regenerate = "litplug sweep " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else \
        f"litplug sweep {spec.source}"
    if args.dry_run:
        for cell in cells:
            print(f"{cell.id}: {shlex.join(command(cell))}")
        print(f"{len(cells)} cells in {len(stages)} stage(s); results would go to {sweep_dir}")
        return 0
    reported = spec.report.stage.split(",")
    report_cells = [c for s, cs in zip(spec.stages, stages) if s.name in reported for c in cs]
    if args.report_only:
        summary = report_mod.summarise(report_cells, spec.report, len(report_cells))
        files = report_mod.write(summary, sweep_dir, spec.name, regenerate) if sweep_dir.exists() else []
        if not files:
            raise ConfigError(f"No sweep '{spec.name}' has run yet ({sweep_dir} does not exist).")
        print(f"Summary of {summary['cells_finished']}/{len(report_cells)} finished cells: {files[1]}")
        return 0
    sweep_dir.mkdir(parents=True, exist_ok=True)
    state = _sweep_state(sweep_dir, spec, uri, regenerate)
    env = {SWEEP_ENV: spec.name, **({PARENT_ENV: state["parent_run_id"]} if state.get("parent_run_id") else {})}
    launcher = (SubmititLauncher(sweep_dir / "submitit", args.cluster, args.workers, _options(args.launcher_option))
                if args.launcher == "submitit" else LocalPool(args.workers))
    print(f"sweep '{spec.name}': {len(cells)} cells in {len(stages)} stage(s) on {launcher.name} "
          f"({args.workers} worker(s)); results in {sweep_dir}", flush=True)
    states, signum = run_cells(stages, sweep_dir, launcher, env, args.resume,
                               out=lambda line: print(line, flush=True))
    summary = report_mod.summarise(report_cells, spec.report, len(report_cells))
    files = report_mod.write(summary, sweep_dir, spec.name, regenerate)
    failed = sorted(c for c, s in states.items() if s in {"failed", "skipped"})
    _log_parent(uri, state.get("parent_run_id"), summary, files,
                "KILLED" if signum else ("FAILED" if failed else "FINISHED"))
    print(f"Summary: {files[1]}", flush=True)
    if signum:
        from litplug.signals import Interrupted

        raise Interrupted(signum)
    if failed:
        raise RunFailure(f"{len(failed)} of {len(cells)} cells did not finish ({', '.join(failed[:5])}); each one's "
                         f"log is in {sweep_dir / 'logs'}. Fix the cause and re-run the same command: finished "
                         "cells are skipped.")
    done = sum(1 for c in cells if is_finished(sweep_dir, c))
    print(f"sweep '{spec.name}': all {done} cells finished.", flush=True)
    return 0


def _options(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--launcher-option '{item}' is not KEY=VALUE.")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def _sweep_state(sweep_dir: Path, spec: SweepSpec, uri: str | None, regenerate: str) -> dict[str, Any]:
    """``sweep.json``: the parent MLflow run (created once, reopened by a re-run) and how to regenerate."""
    path = sweep_dir / "sweep.json"
    state = json.loads(path.read_text()) if path.is_file() else {}
    if uri and not state.get("parent_run_id"):
        from mlflow import MlflowClient

        from litplug.tracking import experiment_id, prepare_store

        base = base_config(spec)
        prepare_store(uri, base.tracking.experiment)
        client = MlflowClient(tracking_uri=uri)
        run = client.create_run(experiment_id(client, base.tracking.experiment, uri), run_name=spec.name,
                                tags={"litplug.sweep": spec.name, "litplug.sweep.role": "parent"})
        for stage in spec.stages:
            for key, values in stage.axes.items():
                client.log_param(run.info.run_id, f"{stage.name}.{key}"[:250], ",".join(values)[:6000])
        state["parent_run_id"] = run.info.run_id
    elif uri:
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=uri).update_run(state["parent_run_id"], status="RUNNING")
    state.update({"name": spec.name, "source": spec.source, "tracking_uri": uri, "command": regenerate})
    path.write_text(json.dumps(state, indent=2))
    return state


def _log_parent(uri: str | None, run_id: str | None, summary: dict[str, Any], files: list[Path], status: str) -> None:
    if not uri or not run_id:
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for file in files:
        client.log_artifact(run_id, str(file))
    client.log_metric(run_id, "sweep/cells_finished", summary["cells_finished"])
    client.set_terminated(run_id, status)


def parent_tags() -> dict[str, str]:
    """Tags a cell's run carries when a sweep started it: MLflow shows it as a child of the sweep's run."""
    tags = {}
    if os.environ.get(PARENT_ENV):
        tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
    if os.environ.get(SWEEP_ENV):
        tags["litplug.sweep"] = os.environ[SWEEP_ENV]
    return tags
