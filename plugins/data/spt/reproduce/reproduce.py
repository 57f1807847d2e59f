"""Laptop-scale reproduction of "The Finetuner's Fallacy" with the spt_*.yaml configs beside this script.

Standard pretraining then finetuning (NPT+FT, delta = 0) against specialized pretraining at several
deltas then finetuning (SPT+FT), same pretraining tokens, several seeds. Every pretraining run is
finetuned from its snapshots (the compute multiplier needs post-finetuning loss against pretraining
tokens) and from its final export, at each finetuning LR; the LR is chosen per run by the held-out
(validation) loss and the test split is reported. The law is fitted on the pretraining runs.

    OMP_NUM_THREADS=1 python plugins/data/spt/reproduce/reproduce.py --out /tmp/spt/repro

Re-running skips finished runs. Writes OUT/summary.json and OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent  # plugins/data/spt/reproduce
PRETRAIN = HERE / "spt_pretrain.yaml"
FINETUNE = HERE / "spt_finetune.yaml"


def train(job: tuple[str, str, list[str]]) -> str:
    """One litplug run in this worker process (imports paid once per worker)."""
    config, name, overrides = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    from litplug.api import setup_run, train_run

    run = setup_run(config, [f"run.name={name}", *overrides])
    if (run.run_dir / "results.json").is_file():
        return name
    train_run(run)
    return name


def tag(x: float) -> str:
    return f"{x:g}".replace(".", "p")


def results(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "results.json").read_text())["metrics"]


def run_all(jobs: list[tuple[str, str, list[str]]], workers: int) -> None:
    with ProcessPoolExecutor(workers) as pool:
        for name in pool.map(train, jobs):
            print(f"done {name}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--deltas", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.1])
    p.add_argument("--pilot-deltas", type=float, nargs="*", default=[0.02, 0.2], help="law pilots, first seed only")
    p.add_argument("--ft-lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    p.add_argument("--steps", type=int, nargs="+", default=[125, 250, 500],
                   help="pretraining steps to finetune from (the last one is the final export)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-law", action="store_true")
    p.add_argument("--summary-only", action="store_true", help="only summarise finished runs")
    args = p.parse_args()
    out = Path(args.out).resolve()
    final = args.steps[-1]
    common = [f"run.output_dir={out}"]

    def tracking(name: str) -> str:  # one sqlite file per run: parallel workers never share one
        (out / "mlflow").mkdir(parents=True, exist_ok=True)
        return f"tracking.uri=sqlite:///{out / 'mlflow' / f'{name}.db'}"

    pt_runs = [(d, s) for d in args.deltas for s in args.seeds] + [(d, args.seeds[0]) for d in args.pilot_deltas]
    pt_jobs = [(str(PRETRAIN), f"pt_d{tag(d)}_s{s}",
                [*common, tracking(f"pt_d{tag(d)}_s{s}"), f"run.seed={s}", f"plugins.spt.delta={d}",
                 f"trainer.max_steps={final}", f"plugins.spt.snapshot_steps={args.steps[:-1]}"])
               for d, s in pt_runs]
    if not args.summary_only:
        run_all(pt_jobs, args.workers)

    ft_jobs = []
    for d in args.deltas:
        for s in args.seeds:
            pt = out / f"pt_d{tag(d)}_s{s}"
            for step in args.steps:
                model = pt / "export" if step == final else pt / "snapshots" / f"step={step}"
                for lr in args.ft_lrs:
                    name = f"ft_d{tag(d)}_s{s}_t{step}_lr{tag(lr)}"
                    ft_jobs.append((str(FINETUNE), name,
                                    [*common, tracking(name), f"run.seed={s}", f"model.path={model}",
                                     f"data.tokenizer={pt / 'export'}", f"optim.lr={lr}"]))
    if not args.summary_only:
        run_all(ft_jobs, args.workers)

    summary = summarise(out, args, final)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary))
    print(markdown(summary))
    if not args.skip_law:
        law_runs = [str(out / f"pt_d{tag(d)}_s{s}") for d, s in pt_runs]
        for name, extra in (("law", []), ("law_forecast", ["--fit-delta-max", "0.05", "--delta-max", "0.2"])):
            subprocess.run([sys.executable, "-m", "litplug.cli", "spt", "fit-law", *law_runs, "--out",
                            str(out / name), "--budget", str(final * 1024), "--budget", str(10 * final * 1024),
                            "--budget", str(100 * final * 1024), "--tracking-uri",
                            f"sqlite:///{out / 'mlflow' / 'fit_law.db'}", *extra], check=False)
    return 0


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def summarise(out: Path, args: argparse.Namespace, final: int) -> dict:
    tokens_per_step = 16 * 64
    table: dict[str, dict] = {}
    for d in args.deltas:
        row: dict = {"delta": d, "post_ft": {}, "post_ft_general": {}, "best_ft_step": {}}
        for step in args.steps:
            domain, general, best_steps = [], [], []
            for s in args.seeds:
                candidates = [results(out / f"ft_d{tag(d)}_s{s}_t{step}_lr{tag(lr)}") for lr in args.ft_lrs]
                chosen = min(candidates, key=lambda m: m["spt/best_val_loss"])  # LR chosen on validation
                domain.append(chosen["test/domain/loss"])
                general.append(chosen["test/general/loss"])
                best_steps.append(chosen["spt/best_step"])
            row["post_ft"][step] = mean_std(domain)
            row["post_ft_general"][step] = mean_std(general)
            row["best_ft_step"][step] = mean_std(best_steps)
        pre = [results(out / f"pt_d{tag(d)}_s{s}") for s in args.seeds]
        row["pre_ft_domain"] = mean_std([m["test/domain/loss"] for m in pre])
        row["pre_ft_general"] = mean_std([m["test/general/loss"] for m in pre])
        row["domain_epochs"] = pre[0]["spt/domain_epochs"]
        table[tag(d)] = row
    # The baseline's best: the lowest seed-mean NPT+FT loss over the pretraining points it was finetuned from.
    base = table[tag(0.0)]["post_ft"]
    base_step = min(args.steps, key=lambda step: base[step]["mean"])
    target = base[base_step]["mean"]
    for row in table.values():
        loss = row["post_ft"][final]["mean"]
        row["r_gain_percent"] = 100 * (target - loss) / target
        reach = tokens_to_reach(row["post_ft"], target, args.steps, tokens_per_step)
        row["tokens_to_baseline_best"] = reach
        row["compute_multiplier"] = base_step * tokens_per_step / reach if reach else None
    return {"tokens_per_step": tokens_per_step, "final_step": final, "seeds": args.seeds,
            "ft_lrs": args.ft_lrs, "baseline_best_post_ft_domain_loss": target,
            "baseline_best_step": base_step, "rows": table}


def tokens_to_reach(curve: dict[int, dict], target: float, steps: list[int], tokens_per_step: int) -> float | None:
    """Pretraining tokens at which the seed-mean post-finetuning loss first reaches ``target``
    (linear in log tokens between measured points); None if it never does within the run."""
    points = [(math.log(s * tokens_per_step), curve[s]["mean"]) for s in steps]
    if points[0][1] <= target:
        return math.exp(points[0][0])  # reached at the first point already: a lower bound on the multiplier
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if y1 <= target:
            return math.exp(x0 + (y0 - target) / (y0 - y1) * (x1 - x0))
    return None


def markdown(summary: dict) -> str:
    final = summary["final_step"]
    lines = [f"NPT+FT best (seed mean): {summary['baseline_best_post_ft_domain_loss']:.4f}, finetuned from "
             f"pretraining step {summary['baseline_best_step']}. R_gain uses it; the multiplier is its pretraining "
             "tokens over the tokens SPT+FT needs to reach it (a lower bound when reached at the first point).", "",
             "| δ | domain epochs | PT domain test loss | PT general test loss | FT domain test loss (best) | "
             "FT general test loss | R_gain % | tokens to NPT+FT best | multiplier |", "|" + "---|" * 9]
    for row in summary["rows"].values():
        ft, fg = row["post_ft"][final], row["post_ft_general"][final]
        reach = row["tokens_to_baseline_best"]
        mult = row["compute_multiplier"]
        lines.append(f"| {row['delta']:g} | {row['domain_epochs']:.1f} | {row['pre_ft_domain']['mean']:.4f} ± "
                     f"{row['pre_ft_domain']['std']:.4f} | {row['pre_ft_general']['mean']:.4f} ± "
                     f"{row['pre_ft_general']['std']:.4f} | {ft['mean']:.4f} ± {ft['std']:.4f} | "
                     f"{fg['mean']:.4f} ± {fg['std']:.4f} | {row['r_gain_percent']:+.2f} | "
                     f"{f'{reach:.3g}' if reach else 'not reached'} | {f'{mult:.2f}x' if mult else '-'} |")
    lines.append("")
    lines.append("Post-finetuning domain test loss against pretraining steps (mean ± std over seeds):")
    steps = list(next(iter(summary["rows"].values()))["post_ft"])
    lines.append("| δ | " + " | ".join(f"step {s}" for s in steps) + " |")
    lines.append("|" + "---|" * (len(steps) + 1))
    for row in summary["rows"].values():
        cells = [f"{row['post_ft'][s]['mean']:.4f} ± {row['post_ft'][s]['std']:.4f}" for s in steps]
        lines.append(f"| {row['delta']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
