"""S2D step-time overhead, measured side by side in one process (litplug-s2d).

Three copies of the same small Llama train on the same batches with AdamW: plain, with S2D refreshed
every m=100 steps (the amortised default), and with a full SVD every step (m=1). Steps of the three are
interleaved round-robin, so load on a shared machine hits all three alike; the mean step time includes
the refresh steps. Every candidate layer is selected (tau is set low) so the penalty is never skipped.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/s2d_overhead.py            # a few minutes on one CPU core
    .venv/bin/python benchmarks/s2d_overhead.py --steps 200 --hidden 256 --seq 128   # a bigger run

Target: amortised S2D <= 1.10x the plain step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from litplug_s2d.config import S2DConfig
from litplug_s2d.layers import match_layers
from litplug_s2d.regularizer import SpectralDecay
from transformers import AutoConfig, AutoModelForCausalLM


def build(hidden: int, layers: int, vocab: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = AutoConfig.for_model("llama", vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=max(1, hidden // 64), intermediate_size=hidden * 8 // 3,
                                  max_position_embeddings=1024)
    return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)


class Variant:
    def __init__(self, name: str, model: torch.nn.Module, refresh_every: int | None) -> None:
        self.name, self.model, self.times = name, model, []
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        self.decay = None
        if refresh_every is not None:
            cfg = S2DConfig(tau=0.01, refresh_every=refresh_every)
            self.decay = SpectralDecay(model, match_layers(model, cfg.layers), cfg)

    def step(self, step: int, ids: torch.Tensor) -> None:
        start = time.perf_counter()
        hidden = self.model.base_model(input_ids=ids[:, :-1]).last_hidden_state
        logits = self.model.get_output_embeddings()(hidden)
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        if self.decay is not None:
            if self.decay.due(step):
                self.decay.refresh(self.model, step)
            loss = loss + self.decay(self.model)[0]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="steps per variant (a multiple of m=100)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [Variant("plain AdamW", build(args.hidden, args.layers, args.vocab), None),
                Variant("S2D, SVD every 100 steps", build(args.hidden, args.layers, args.vocab), 100),
                Variant("S2D, SVD every step", build(args.hidden, args.layers, args.vocab), 1)]
    generator = torch.Generator().manual_seed(0)
    warm = torch.zeros(args.batch, args.seq, dtype=torch.long)
    for variant in variants:  # warm up allocators and kernels; not timed, no optimizer step
        variant.model.base_model(input_ids=warm).last_hidden_state.sum().backward()
        variant.opt.zero_grad(set_to_none=True)
    for step in range(args.steps):
        ids = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=generator)
        for variant in variants:
            variant.step(step, ids)
    decay = variants[1].decay
    print(f"model: llama hidden={args.hidden} layers={args.layers}, batch {args.batch}x{args.seq}, {args.steps} "
          f"steps each, interleaved; {len(decay.names)} candidate layers, k_target={sorted(set(decay.k_targets))}")
    base_mean = statistics.fmean(variants[0].times)
    base_median = statistics.median(variants[0].times)
    for variant in variants:
        times = variant.times  # every step, refresh steps included
        mean, median = statistics.fmean(times), statistics.median(times)
        print(f"{variant.name:<26} mean {mean * 1e3:8.2f} ms  median {median * 1e3:8.2f} ms  "
              f"ratio (mean) {mean / base_mean:5.3f}x  ratio (median) {median / base_median:5.3f}x")


if __name__ == "__main__":
    main()
