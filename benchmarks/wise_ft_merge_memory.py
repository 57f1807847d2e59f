"""Peak memory and time of the streaming WiSE-FT merge against the naive one, side by side in one run.

naive: load both state dicts fully (``safetensors.torch.load_file``), interpolate, ``save_file``.
streaming: ``interpolate_dirs`` (one tensor at a time, short-lived handles, output written per shard).
Each method runs in a fresh child process (memory a previous method freed but the allocator kept
would hide the next one's peak); the child reports its peak RSS (VmHWM) minus its RSS before the
merge, relative to one model's size, and the wall time relative to the naive merge. Linux only.

    OMP_NUM_THREADS=1 python benchmarks/wise_ft_merge_memory.py --mb 256
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from litplug_wise_ft.interpolate import interpolate_dirs, interpolate_tensor
from safetensors.torch import load_file, save_file


def rss(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def run_method(method: str, root: Path, shard: int) -> None:
    """In the child: merge once and print {"peak": extra bytes, "seconds": wall time}."""
    before = rss("VmRSS")
    start = time.perf_counter()
    if method == "naive":
        naive(root / "early", root / "late", root / method)
    else:
        interpolate_dirs(root / "early", root / "late", 0.5, root / method, max_shard_size=shard)
    print(json.dumps({"peak": rss("VmHWM") - before, "seconds": time.perf_counter() - start}))


def measure(method: str, root: Path, shard: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, __file__, "--child", method, "--root", str(root), "--shard", str(shard)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["peak"], result["seconds"]


def naive(early: Path, late: Path, out: Path) -> None:
    a, b = load_file(early / "model.safetensors"), load_file(late / "model.safetensors")
    merged = {k: interpolate_tensor(a[k], b[k], 0.5) for k in b}
    out.mkdir()
    save_file(merged, out / "model.safetensors", metadata={"format": "pt"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="model size in MB (float32)")
    parser.add_argument("--tensors", type=int, default=16)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_method(args.child, args.root, args.shard)
        return
    root = Path(tempfile.mkdtemp(prefix="wise_ft_bench."))
    try:
        numel = args.mb * 2**20 // 4 // args.tensors
        for name, seed in (("early", 0), ("late", 1)):
            g = torch.Generator().manual_seed(seed)
            tensors = {f"layer{i}.weight": torch.randn(numel, generator=g) for i in range(args.tensors)}
            (root / name).mkdir()
            save_file(tensors, root / name / "model.safetensors", metadata={"format": "pt"})
            del tensors
        size = args.mb * 2**20
        results = {
            "naive (load both, save)": measure("naive", root, 0),
            "streaming (one shard)": measure("stream1", root, 2 * size),
            "streaming (shards of model/8)": measure("stream8", root, size // 8),
        }
        base_time = results["naive (load both, save)"][1]
        print(f"model: {args.mb} MB in {args.tensors} float32 tensors")
        print(f"{'method':<32} {'peak extra / model':>18} {'time / naive':>13}")
        for name, (peak, seconds) in results.items():
            print(f"{name:<32} {peak / size:>18.2f} {seconds / base_time:>13.2f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
