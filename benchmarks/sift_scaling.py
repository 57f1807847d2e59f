"""SIFT-Masks store scaling: time and peak memory to add the N-th task and to unlearn one task, for
N = 8, 32, 128 tasks, next to rebuilding a TIES merge without that task, all in one process.

Task vectors are synthetic but follow the method's contract (sign-fixed to v, about half the
entries non-zero); 8 distinct ones are cycled under different task names. Peak memory is the
largest resident-set growth seen by a 1 ms sampler during the operation, in units of one model
(float32 parameter bytes). Targets: add and unlearn flat in N; peak memory <= 3 models for any N.

    OMP_NUM_THREADS=1 python benchmarks/sift_scaling.py [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from litplug_sift_masks.baselines import ties
from litplug_sift_masks.signs import sign_positive
from litplug_sift_masks.store import SiftStore, TaskRecord
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def measure(fn: Callable[[], Any]) -> tuple[float, int]:
    """(seconds, peak RSS growth in bytes) of one call."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    start, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    fn()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    return seconds, max(peak[0], rss()) - start


def make_models(root: Path, hidden: int, layers: int, distinct: int) -> tuple[Path, list[Path], int]:
    config = LlamaConfig(vocab_size=1024, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                         num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=128)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    base = root / "base"
    model.save_pretrained(base, safe_serialization=True)
    theta0 = {n: p.detach().clone() for n, p in model.state_dict().items()}
    model_bytes = sum(t.numel() * t.element_size() for t in theta0.values())
    tasks = []
    for k in range(distinct):
        g = torch.Generator().manual_seed(k + 1)
        tuned = {}
        for name, t in theta0.items():
            sign = sign_positive(name, t.shape, 0).float() * 2 - 1
            keep = torch.rand(t.shape, generator=g) < 0.5
            tuned[name] = t + sign * keep * torch.rand(t.shape, generator=g) * 1e-2
        target = root / f"task{k}"
        target.mkdir()
        shutil.copy(base / "config.json", target / "config.json")
        save_file(tuned, str(target / "model.safetensors"), metadata={"format": "pt"})
        tasks.append(target)
    return base, tasks, model_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--sizes", default="8,32,128")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="sift-bench-"))
    try:
        base, tasks, model_bytes = make_models(root, args.hidden, args.layers, 8)
        store = SiftStore.create(root / "store", base, sign_seed=0)
        print(f"model: {model_bytes / 2**20:.1f} MiB float32 ({model_bytes // 4} parameters); store sum in float64")
        print(f"{'N':>5} {'add N-th s':>11} {'add peak':>9} {'unlearn s':>10} {'unl. peak':>10} "
              f"{'TIES rebuild s':>15} {'unlearn/TIES':>13}")
        rows = []
        for n in range(1, max(sizes) + 1):
            def add(n: int = n) -> None:
                store.add(tasks[n % len(tasks)], TaskRecord(name=f"t{n}"))

            if n not in sizes:
                add()
                continue
            add_s, add_peak = measure(add)
            unlearn_s, unlearn_peak = measure(lambda: store.unlearn("t1", tasks[1]))
            rest = [tasks[k % len(tasks)] for k in range(2, n + 1)]
            ties_s, _ = measure(lambda rest=rest: ties(base, rest, 0.2))
            store.add(tasks[1], TaskRecord(name="t1"))  # back to N tasks
            rows.append((n, add_s, add_peak, unlearn_s, unlearn_peak, ties_s))
            print(f"{n:>5} {add_s:>11.3f} {add_peak / model_bytes:>8.2f}x {unlearn_s:>10.3f} "
                  f"{unlearn_peak / model_bytes:>9.2f}x {ties_s:>15.3f} {unlearn_s / ties_s:>13.4f}", flush=True)
        first, last = rows[0], rows[-1]
        print(f"add time N={last[0]} / N={first[0]}: {last[1] / first[1]:.2f}; "
              f"unlearn time N={last[0]} / N={first[0]}: {last[3] / first[3]:.2f}; "
              f"max peak memory: {max(max(r[2], r[4]) for r in rows) / model_bytes:.2f} models")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
