"""CPU fallbacks of the kernel plugins: peak memory and time, each next to the plain path, in one process.

- litplug-liger: one forward+backward of the LM loss from hidden states, the core's plain
  cross-entropy (full [N, V] logits) vs the plugin's chunked linear cross-entropy.
- litplug-xformers: one forward+backward of a Llama attention stack, eager attention vs the plugin's
  registered function (which is SDPA on CPU).

Peak memory is read from the PyTorch profiler's allocation events (tracemalloc does not see PyTorch's
CPU allocator). Run with one thread so the numbers do not depend on the machine's load:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kernels_cpu.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/kernels_cpu.py --tokens 2048 --vocab 32768 131072
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from litplug_liger.config import LigerConfig
from litplug_liger.plugin import LigerPlugin
from litplug_xformers.config import XformersConfig
from litplug_xformers.plugin import XformersPlugin
from torch.profiler import ProfilerActivity, profile
from transformers import LlamaConfig, LlamaForCausalLM

from litplug.config import load_config
from litplug.defaults import CorePlugin
from litplug.head import OutputHead

MiB = 2**20


def peak_and_seconds(fn: Callable[[], Any]) -> tuple[float, float]:
    """(peak live CPU tensor memory in MiB, wall seconds) of one call; timed outside the profiler."""
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak / MiB, seconds


def loss_step(loss_fn: Callable[..., torch.Tensor], hidden: torch.Tensor, head: torch.nn.Linear,
              labels: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        head.zero_grad(set_to_none=True)
        loss_fn(hidden=hidden.detach().requires_grad_(), head=OutputHead(head), labels=labels).backward()

    return step


def lm_loss_rows(tokens: int, hidden_size: int, vocabs: list[int], chunk_rows: int | None) -> list[str]:
    rows = []
    for vocab in vocabs:
        torch.manual_seed(0)
        hidden = torch.randn(1, tokens, hidden_size)
        head = torch.nn.Linear(hidden_size, vocab, bias=False)
        labels = torch.randint(0, vocab, (1, tokens))
        plain_mem, plain_s = peak_and_seconds(loss_step(CorePlugin().lm_loss, hidden, head, labels))
        fused = LigerPlugin(LigerConfig(chunk_rows=chunk_rows)).lm_loss
        fused_mem, fused_s = peak_and_seconds(loss_step(fused, hidden, head, labels))
        rows.append(f"| lm_loss N={tokens} H={hidden_size} V={vocab} | {plain_mem:.0f} | {fused_mem:.0f} | "
                    f"{fused_mem / plain_mem:.3f} | {fused_s / plain_s:.2f} |")
    return rows


def attention_row(seq_len: int) -> str:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=256, num_hidden_layers=2, num_attention_heads=8,
                         num_key_value_heads=4, intermediate_size=512, max_position_embeddings=seq_len)
    model = LlamaForCausalLM(config)
    model.set_attn_implementation("eager")
    ids = torch.randint(0, 256, (1, seq_len))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model.model(input_ids=ids).last_hidden_state.sum().backward()

    eager_mem, eager_s = peak_and_seconds(step)
    XformersPlugin(XformersConfig()).configure_model(model=model, config=load_config(None, ["trainer.accelerator=cpu"]))
    plugin_mem, plugin_s = peak_and_seconds(step)
    return (f"| 2-layer Llama backbone, seq {seq_len}, 8 heads | {eager_mem:.0f} (eager) | {plugin_mem:.0f} | "
            f"{plugin_mem / eager_mem:.3f} | {plugin_s / eager_s:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1024, help="token rows N of the loss")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--vocab", type=int, nargs="+", default=[32_768, 131_072])
    parser.add_argument("--chunk-rows", type=int, default=None, help="plugins.liger.chunk_rows (default: auto)")
    parser.add_argument("--seq-len", type=int, default=2048, help="attention sequence length")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), fp32, one forward+backward each")
    print("| workload | plain peak MiB | plugin peak MiB | memory ratio | time ratio |")
    print("|---|---|---|---|---|")
    for row in lm_loss_rows(args.tokens, args.hidden_size, args.vocab, args.chunk_rows):
        print(row, flush=True)
    print(attention_row(args.seq_len), flush=True)


if __name__ == "__main__":
    main()
