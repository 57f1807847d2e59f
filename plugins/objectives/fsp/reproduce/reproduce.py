"""The path-star reproduction: NTP, MTP and FSP-BCE, three seeds each, logged to one MLflow experiment.

Trains the three configs next to this script in this process, as the README's shell loop does with
``litplug train``, and prints test exact match per variant (mean and standard deviation over seeds).
From the repo root (about 3 minutes per run on one idle CPU core):

    OMP_NUM_THREADS=1 .venv/bin/python plugins/objectives/fsp/reproduce/reproduce.py --seeds 0 1 2 \
        [--set trainer.max_steps=... (every run)]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {  # run name prefix: config (identical except the plugins: section)
    "ntp": "fsp_path_star_ntp.yaml",
    "mtp": "fsp_path_star_mtp.yaml",
    "fsp": "fsp_path_star.yaml",
}
EXACT_MATCH = "eval/path_star/exact_match"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], metavar="key=value", help="overrides for every run")
    args = parser.parse_args(argv)

    from litplug.api import train_command  # after argparse, so --help stays fast

    table: dict[str, list[float]] = {}
    for seed in args.seeds:
        for name, config in VARIANTS.items():
            run = train_command(str(HERE / config), [f"run.seed={seed}", f"run.name={name}_s{seed}", *args.set])
            table.setdefault(name, []).append(run.results["metrics"][EXACT_MATCH])
    print("| test exact match | mean ± sd | per seed |\n|---|---|---|")
    for name, values in table.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"| {name} | {statistics.mean(values):.3f} ± {sd:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
