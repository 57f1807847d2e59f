"""Reproduce the WiSE-FT pass@k claim at laptop scale, with the exact commands a user would run.

The configs lie beside this script (``plugins/merging/wise_ft/reproduce/``):

1. ``litplug train wise_ft_pretrain.yaml`` (once): a tiny Llama that knows 2-digit addition.
2. per seed, ``litplug train wise_ft_finetune.yaml``: 100 epochs on 256 additions, keeping
   the step with the best validation pass@16 (``wise_ft/best``).
3. per seed, ``litplug merge wise-ft --alphas 0:1:0.1`` between that early checkpoint and the last one,
   on the validation split (to choose α) and on the test split (to report).

Then it prints (and writes to OUT/summary.md) the mean ± std over seeds of test pass@1/4/16, majority
vote and greedy accuracy for the early model (α=0), the late model (α=1), α=0.5 (the default, fixed
in advance) and the α chosen on validation pass@1 and on validation pass@16. Finished steps are
skipped when re-run.

    OMP_NUM_THREADS=1 python plugins/merging/wise_ft/reproduce/reproduce.py --out /tmp/me/wise_ft --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent  # plugins/merging/wise_ft/reproduce: the two stages' configs
METRICS = ("pass@1", "pass@4", "pass@16", "majority_vote", "greedy", "var_rho")
SPLIT_SIZES = {"validation": 128, "test": 200}


def litplug(*args: Any) -> None:
    command = [sys.executable, "-m", "litplug.cli", *map(str, args)]
    print("$ litplug " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def run_seed(runs: Path, pretrain: Path, seed: int) -> Path:
    run = runs / f"wise_ft_finetune_s{seed}"
    if not (run / "results.json").is_file():
        litplug("train", EXAMPLES / "wise_ft_finetune.yaml", f"run.output_dir={runs}", f"run.name={run.name}",
                f"run.seed={seed}", f"model.path={pretrain}", f"data.tokenizer={pretrain}")
    for split, size in SPLIT_SIZES.items():
        if not (run / f"sweep_{split}" / "sweep.json").is_file():
            litplug("merge", "wise-ft", "--early", run / "wise_ft" / "best", "--late", run / "export",
                    "--alphas", "0:1:0.1", "--eval", "arithmetic", "--n", 16, "--k", "1,4,16", "--split", split,
                    "--num-examples", size, "--seed", seed, "--out", run / f"sweep_{split}", "--overwrite")
    return run


def row_at(sweep: dict[str, Any], alpha: float) -> dict[str, float]:
    return next(r for r in sweep["rows"] if abs(r["alpha"] - alpha) < 1e-9)


def seed_summary(run: Path) -> dict[str, Any]:
    selection = json.loads((run / "wise_ft" / "selection.json").read_text())
    val = json.loads((run / "sweep_validation" / "sweep.json").read_text())
    test = json.loads((run / "sweep_test" / "sweep.json").read_text())
    alpha_k, alpha_1 = val["best"]["pass@16"]["alpha"], val["best"]["pass@1"]["alpha"]
    history = selection["history"]
    return {
        "early_step": selection["best"]["step"],
        "alpha_star": {"pass@16": alpha_k, "pass@1": alpha_1},
        "curve": {"start": history[0], "best": next(h for h in history if h["step"] == selection["best"]["step"]),
                  "last": history[-1]},
        "test": {"early (α=0)": row_at(test, 0.0), "late (α=1)": row_at(test, 1.0), "α=0.5": row_at(test, 0.5),
                 "α* (val pass@1)": row_at(test, alpha_1), "α* (val pass@16)": row_at(test, alpha_k)},
    }


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def markdown(summaries: dict[int, dict[str, Any]]) -> str:
    seeds = sorted(summaries)
    lines = [f"Seeds {seeds}; test split, 200 prompts, n = 16 samples at T = 1; mean ± std over seeds.", "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for model in summaries[seeds[0]]["test"]:
        cells = [mean_std([summaries[s]["test"][model][m] for s in seeds]) for m in METRICS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    lines += ["", "Validation curve during finetuning (128 prompts, n = 16): step, pass@1, pass@16.", "",
              "| seed | start | early (kept) | last | α* by val pass@1 / pass@16 |", "|---|---|---|---|---|"]
    for s in seeds:
        c = summaries[s]["curve"]
        cell = [f"step {c[k]['step']}: {c[k]['pass@1']:.3f} / {c[k]['pass@16']:.3f}" for k in ("start", "best", "last")]
        star = summaries[s]["alpha_star"]
        lines.append(f"| {s} | " + " | ".join(cell) + f" | {star['pass@1']:g} / {star['pass@16']:g} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs and the summary")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    runs = args.out / "runs"
    pretrain = runs / "wise_ft_pretrain" / "export"
    if not (runs / "wise_ft_pretrain" / "results.json").is_file():
        litplug("train", EXAMPLES / "wise_ft_pretrain.yaml", f"run.output_dir={runs}")
    summaries = {seed: seed_summary(run_seed(runs, pretrain, seed)) for seed in args.seeds}
    text = markdown(summaries)
    (args.out / "summary.md").write_text(text)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
