"""The 2x2 pause grid (StdPT/PausePT x StdFT/PauseFT) over seeds, plus the M_inf sweep.

Runs pause_pretrain.yaml and pause_finetune.yaml (next to this script) through litplug in this process and
prints exact-match accuracy per cell (mean and standard deviation over seeds). Usage, from the repo root:

    OMP_NUM_THREADS=1 .venv/bin/python plugins/objectives/pause/reproduce/reproduce.py \
        --out /tmp/pause_grid --seeds 0 1 2 [--set trainer.max_steps=... (both stages)]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from litplug.api import build_module, context, evaluate_all, load_config, setup_run, source_specs, train_run

HERE = Path(__file__).resolve().parent  # the two configs
CELLS = {  # name: (pretraining with pauses, finetuning overrides)
    "StdPT_StdFT": (False, ["plugins.pause.enabled=false"]),
    "StdPT_PauseFT": (False, []),
    "PausePT_StdFT": (True, ["plugins.pause.num_pauses=0"]),
    "PausePT_PauseFT": (True, []),
}
EXACT_MATCH, VAL_LOSS = "eval/arithmetic/exact_match", "val/arithmetic/loss"


def train(config: str, overrides: list[str]) -> tuple[Path, dict[str, float]]:
    """Train (or reuse a finished run) and return (run dir, its final metrics)."""
    run = setup_run(str(HERE / config), overrides)
    results_file = run.run_dir / "results.json"
    if not results_file.is_file():
        train_run(run)
    return run.run_dir, json.loads(results_file.read_text())["metrics"]


def evaluate(run_dir: Path, inference_pauses: int) -> float:
    """Exact match of a finished run with M_inf pauses appended at inference."""
    export = (run_dir / "export").resolve()
    run = setup_run(str(run_dir / "config.yaml"), [f"model.path={export}", f"data.tokenizer={export}",
                                                   f"plugins.pause.inference_pauses={inference_pauses}"])
    ctx = context(build_module(run), "validate")
    results = evaluate_all(ctx.model, ctx.tokenizer, ctx.hooks, source_specs(ctx.config), ctx.config)
    return results["arithmetic"]["exact_match"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="run.output_dir for every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pt", nargs="*", default=[], help="extra overrides for pretraining")
    parser.add_argument("--ft", nargs="*", default=[], help="extra overrides for finetuning")
    args = parser.parse_args()
    common = [f"run.output_dir={args.out}", f"data.cache_dir={args.out}/.cache", "tracking.enabled=false"]
    table: dict[str, list[float]] = {}
    for seed in args.seeds:
        exports = {}
        for paused in (False, True):
            name = f"{'pause' if paused else 'std'}_pt_s{seed}"
            extra = [] if paused else ["plugins.pause.enabled=false"]
            run_dir, metrics = train("pause_pretrain.yaml", [*common, f"run.name={name}", f"run.seed={seed}",
                                                             *extra, *args.pt])
            exports[paused] = (run_dir / "export").resolve()
            table.setdefault(f"pretrain_{'pause' if paused else 'std'}", []).append(metrics[EXACT_MATCH])
        for cell, (paused, extra) in CELLS.items():
            export = exports[paused]
            run_dir, metrics = train("pause_finetune.yaml", [*common, f"run.name={cell}_s{seed}", f"run.seed={seed}",
                                                             f"model.path={export}", f"data.tokenizer={export}", *extra,
                                                             *args.ft])
            table.setdefault(cell, []).append(metrics[EXACT_MATCH])
            table.setdefault(f"{cell} answer loss (val)", []).append(metrics[VAL_LOSS])
            if cell.endswith("PauseFT"):
                m = load_config(str(run_dir / "config.yaml")).plugins.pause.num_pauses
                for m_inf in (0, m // 2):
                    table.setdefault(f"{cell} M_inf={m_inf}", []).append(evaluate(run_dir, m_inf))
        (Path(args.out) / "grid.json").write_text(json.dumps(table, indent=2))
        print(json.dumps({k: v for k, v in table.items()}), flush=True)
    print("| cell | mean ± sd | per seed |\n|---|---|---|")
    for cell, values in table.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {cell} | {statistics.mean(values):.3f} ± {sd:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
