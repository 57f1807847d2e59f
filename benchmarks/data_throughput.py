"""Tokens/s the streaming loader delivers vs tokens/s the tiny model consumes, side by side.

The loader (litdata StreamingDataLoader over a weighted two-source mixture, with litplug's collate)
must never be the bottleneck: target ratio loader / model >= 5.

    python benchmarks/data_throughput.py [--steps 50]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import torch  # noqa: E402

from litplug.run import build_module, setup  # noqa: E402

MIXTURE = ("data.sources=[{task: arithmetic, params: {digits: 3}, num_train: 4000, weight: 0.7}, "
           "{task: qa, num_train: 2000, weight: 0.3}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = setup(None, [MIXTURE, "data.seq_len=48", "data.batch_size=32", f"run.output_dir={Path(tmp)}",
                           "tracking.enabled=false"])
        loader = run.datamodule.train_dataloader()
        batches = []
        start = time.perf_counter()
        for batch in loader:
            batches.append(batch)
            if len(batches) == args.steps:
                break
        loader_s = time.perf_counter() - start
        tokens = sum(b["input_ids"].numel() for b in batches)

        module = build_module(run)
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
        start = time.perf_counter()
        for batch in batches:
            loss = module.compute_losses(dict(batch), "train")["loss"]
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        model_s = time.perf_counter() - start
    loader_tps, model_tps = tokens / loader_s, tokens / model_s
    print(f"{args.steps} batches of 32 x 48 tokens, 2-source mixture, torch threads={torch.get_num_threads()}")
    print(f"loader: {loader_tps:,.0f} tokens/s   model (fwd+bwd+AdamW, default tiny Llama): {model_tps:,.0f} tokens/s")
    print(f"ratio loader / model = {loader_tps / model_tps:.1f}  (target >= 5)")


if __name__ == "__main__":
    main()
