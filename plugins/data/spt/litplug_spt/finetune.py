"""``litplug spt finetune CONFIG --model DIR --lr A --lr B ... --out DIR [--set KEY=VALUE ...]``: finetune one
pretrained model at each learning rate of a grid, pick the LR on the held-out *validation* loss
(``spt/best_val_loss``, the early-stopped minimum) and write the chosen run's metrics to ``OUT/results.json``.

One train run per LR under ``OUT/lr=<lr>`` (finished ones are skipped), in this process. The results
hold the chosen run's final metrics (``test/<source>/loss`` of its best checkpoint, ``spt/best_step``, ...),
``spt/ft_lr`` (the chosen LR), ``spt/ft_lr_index`` (its position in the grid: 0 or the last = an edge)
and, with ``--pretrain RUN``, that pretraining run's final metrics under ``pretrain/``. This is the
paper's finetuning protocol (a grid, early stopping on the domain loss, the best checkpoint) as one
sweep cell: ``litplug sweep`` reports ``OUT/results.json`` like a training cell's."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from litplug.api import ConfigError

CHOOSE_ON = "spt/best_val_loss"


def add_parser(verbs: Any) -> None:
    ft = verbs.add_parser("finetune", help="finetune at each LR of a grid; keep the LR with the best validation loss",
                          description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ft.add_argument("config", help="the finetuning run config (e.g. plugins/data/spt/reproduce/spt_finetune.yaml)")
    ft.add_argument("--model", required=True, help="the pretrained HF directory (an export or a snapshot)")
    ft.add_argument("--tokenizer", default=None, help="tokenizer directory (default: --model)")
    ft.add_argument("--lr", type=float, action="append", required=True, help="a finetuning LR (repeatable)")
    ft.add_argument("--out", required=True, help="output directory: OUT/lr=<lr>/ runs and OUT/results.json")
    ft.add_argument("--pretrain", default=None,
                    help="the pretraining run directory: its final metrics are copied under pretrain/")
    ft.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every finetuning run (repeatable), e.g. --set run.seed=1")
    ft.set_defaults(func=finetune_command)


def lr_name(lr: float) -> str:
    return f"lr={lr:g}"


def metrics_of(run_dir: Path) -> dict[str, float]:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' has no results.json: it is not a finished litplug run.")
    return dict(json.loads(path.read_text())["metrics"])


def choose(candidates: dict[float, dict[str, float]]) -> float:
    """The LR whose run has the lowest validation loss (the first such in grid order on a tie)."""
    missing = [lr for lr, m in candidates.items() if CHOOSE_ON not in m]
    if missing:
        raise ConfigError(f"Finetuning runs at lr={missing} logged no {CHOOSE_ON}: set plugins.spt.early_stopping"
                          "=true (and trainer.val_check_interval) in the finetuning config.")
    return min(candidates, key=lambda lr: candidates[lr][CHOOSE_ON])


def finetune_command(args: argparse.Namespace) -> int:
    lrs = list(dict.fromkeys(args.lr))
    if any(not lr > 0 for lr in lrs):
        raise ConfigError(f"--lr values must be positive (got {lrs}).")
    if not Path(args.model).is_dir():
        raise ConfigError(f"--model '{args.model}' is not a directory (a pretraining export or snapshot).")
    pretrain = metrics_of(Path(args.pretrain)) if args.pretrain else {}
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from litplug.api import setup_run, train_run

    candidates: dict[float, dict[str, float]] = {}
    for lr in lrs:
        run = setup_run(args.config, [*args.overrides, f"model.path={args.model}",
                                      f"data.tokenizer={args.tokenizer or args.model}", f"optim.lr={lr}",
                                      f"run.output_dir={out}", f"run.name={lr_name(lr)}"])
        if not (run.run_dir / "results.json").is_file():
            train_run(run)
        candidates[lr] = metrics_of(run.run_dir)
    best = choose(candidates)
    metrics = {**candidates[best], "spt/ft_lr": best, "spt/ft_lr_index": float(lrs.index(best)),
               **{f"pretrain/{k}": v for k, v in pretrain.items()}}
    report = {"metrics": metrics, "chosen": str(out / lr_name(best)), "chosen_on": CHOOSE_ON,
              "candidates": {lr_name(lr): {CHOOSE_ON: m[CHOOSE_ON], "test/domain/loss": m.get("test/domain/loss")}
                             for lr, m in candidates.items()}}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    print(f"spt finetune: lr={best:g} chosen on {CHOOSE_ON} "
          + ", ".join(f"{lr_name(lr)}: {m[CHOOSE_ON]:.4f}" for lr, m in candidates.items()))
    print(f"Wrote {out / 'results.json'}")
    return 0
