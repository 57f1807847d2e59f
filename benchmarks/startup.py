"""Start-up: how long until `litplug` says something, finishes its first training step, and lists plugins,
beside the import floor (`python -c "import torch, lightning"`) that every training start pays.

Each round runs every command once, alternating, as fresh processes, so machine load hits all of them
alike; the table gives medians (and min-max) over rounds, and the margin of the first step over the floor.
Training uses the quickstart config on data cached by a warm-up run (two steps, tracking on, into a
temporary folder), so the numbers are the start-up a user sees on a second run. Target: first line
< 1 s, first step <= floor + ~2 s, `litplug plugins` <= 1.5 s.

    python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITPLUG = [sys.executable, "-m", "litplug.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def timed(cmd: list[str], marks: dict[str, str]) -> dict[str, float]:
    """Wall seconds until each mark (a line prefix) first appears on stdout, and until exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV, cwd=ROOT)
    seen: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - start
        for name, prefix in marks.items():
            if name not in seen and line.startswith(prefix):
                seen[name] = now
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    seen["exit"] = time.perf_counter() - start
    missing = set(marks) - set(seen)
    if missing:
        raise SystemExit(f"{' '.join(cmd)} never printed {sorted(missing)}")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="litplug-startup-"))
    train = [*LITPLUG, "train", "examples/quickstart.yaml", f"run.output_dir={work}", "trainer.max_steps=2",
             "trainer.log_every_n_steps=1", "trainer.val_check_interval=null", "eval.num_examples=8"]
    train_marks = {"first line": "litplug: training", "first step": "step 1/"}
    timed([*train, "run.name=warmup"], train_marks)  # tokenise the data once, create the MLflow store

    samples: dict[str, list[float]] = {}
    for r in range(args.rounds):
        runs = {
            "import floor (torch + lightning)": lambda: timed([sys.executable, "-c", "import torch, lightning"], {}),
            "litplug plugins": lambda: timed([*LITPLUG, "plugins"], {}),
            "litplug plugins --check": lambda: timed([*LITPLUG, "plugins", "--check"], {}),
            "litplug config": lambda: timed([*LITPLUG, "config", "examples/quickstart.yaml"], {}),
            "litplug train": lambda r=r: timed([*train, f"run.name=r{r}"], train_marks),
        }
        for name, run in runs.items():
            for mark, seconds in run().items():
                samples.setdefault(f"{name}: {mark}" if mark != "exit" else name, []).append(seconds)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    def med(key: str) -> float:
        return statistics.median(samples[key])

    print(f"\nStart-up, {args.rounds} alternating rounds (median, min-max, seconds):\n")
    print("| what | median s | min-max s |")
    print("|---|---|---|")
    for key, values in samples.items():
        print(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    floor = med("import floor (torch + lightning)")
    margin = [s - f for s, f in zip(samples["litplug train: first step"], samples["import floor (torch + lightning)"])]
    print(f"\nfirst step - import floor: median {statistics.median(margin):.2f} s (per round: "
          f"{', '.join(f'{m:.2f}' for m in margin)}); floor {floor:.2f} s")


if __name__ == "__main__":
    main()
