"""Kernel plugins on a CUDA GPU: tokens/s, peak memory and loss agreement, plain vs +liger vs
+liger+xformers, measured one after the other in one process on the same data and initial weights.

Default workload (issue 10): a ~280M-parameter Llama (hidden 768, 12 layers, 12 heads, 4 KV heads,
untied 128,256-token vocabulary), sequences of 2048, batch 4, bf16 autocast over fp32 weights
(Lightning's ``bf16-mixed``), AdamW, 50 steps. Each step is litplug's own training step
(``LitplugModule.compute_losses``) with the plugins' real hooks; "plain" is the core alone (HF
model, SDPA attention, cross-entropy over the full logits).

    pip install 'litplug-liger[gpu]' 'litplug-xformers[gpu]'   # with PIP_CONSTRAINT, see the Makefile
    .venv/bin/python benchmarks/kernels_gpu.py --out kernels_gpu.json
    .venv/bin/python benchmarks/kernels_gpu.py --device cpu --smoke   # a few tiny CPU steps: checks the script

Liger patches transformers' Llama module globally (its design), so "plain" runs first. Targets:
liger peak memory <= 0.6x plain, tokens/s >= 1.1x plain, |loss - plain| < 1e-2 after 50 steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
from litplug_liger.config import LigerConfig
from litplug_liger.plugin import LigerPlugin
from litplug_xformers.config import XformersConfig
from litplug_xformers.plugin import XformersPlugin
from transformers import LlamaConfig, LlamaForCausalLM

from litplug.config import load_config
from litplug.errors import ConfigError
from litplug.module import LitplugModule
from litplug.plugins import new_manager, register_all

VARIANTS = {"plain": (), "liger": ("liger",), "liger+xformers": ("liger", "xformers")}
SMOKE = {"vocab": 512, "hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate_size": 128,
         "seq_len": 64, "batch_size": 2, "steps": 4, "warmup": 1}


def build_model(args: argparse.Namespace) -> LlamaForCausalLM:
    torch.manual_seed(0)  # identical initial weights for every variant
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden_size, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                         intermediate_size=args.intermediate_size, max_position_embeddings=args.seq_len,
                         tie_word_embeddings=False)
    return LlamaForCausalLM._from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def batches(args: argparse.Namespace, device: str) -> Any:
    """The same stream for every variant: random tokens whose second half repeats the first (learnable)."""
    generator = torch.Generator().manual_seed(1234)
    for _ in range(args.steps):
        half = torch.randint(0, args.vocab, (args.batch_size, args.seq_len // 2 + 1), generator=generator)
        ids = torch.cat([half, half], dim=1)[:, : args.seq_len + 1]
        yield ids[:, :-1].to(device), ids[:, 1:].contiguous().to(device)


def make_plugins(names: tuple[str, ...], strict: bool) -> dict[str, Any]:
    plugins: dict[str, Any] = {}
    if "liger" in names:
        plugins["liger"] = LigerPlugin(LigerConfig(strict=strict))
    if "xformers" in names:
        plugins["xformers"] = XformersPlugin(XformersConfig(strict=strict))
    return plugins


def run_variant(names: tuple[str, ...], args: argparse.Namespace) -> dict[str, Any]:
    device, cuda = args.device, args.device == "cuda"
    cfg = load_config(None, [f"trainer.accelerator={device}", f"trainer.max_steps={args.steps}"])
    pm = new_manager()
    register_all(pm, make_plugins(names, strict=cuda))
    model = build_model(args)
    pm.hook.configure_model(model=model, tokenizer=None, config=cfg)
    module = LitplugModule(cfg, model, None, pm).to(device)
    optimizer = torch.optim.AdamW(module.parameters(), lr=args.lr, betas=(0.9, 0.95), fused=cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, started = [], time.perf_counter()
    for step, (inputs, labels) in enumerate(batches(args, device)):
        if step == args.warmup:  # Triton compiles on the first steps: time only the rest
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16):
            terms = module.compute_losses({"input_ids": inputs, "labels": labels}, "train")
        terms["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(terms["lm"].item())
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    result = {
        "variant": "+".join(names) or "plain",
        "attn_implementation": model.config._attn_implementation,
        "tokens_per_s": (args.steps - args.warmup) * args.batch_size * args.seq_len / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "losses": losses,
    }
    del module, model, optimizer
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return result


def versions(device: str) -> dict[str, str]:
    found = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
             "cuda": str(torch.version.cuda)}
    for package in ("torch", "transformers", "liger-kernel", "xformers", "triton"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def table(results: list[dict[str, Any]], last: int) -> str:
    plain = results[0]
    plain_loss = sum(plain["losses"][-last:]) / last
    lines = ["| variant | attention | tokens/s | vs plain | peak GiB | vs plain | final loss | |loss - plain| |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        loss = sum(r["losses"][-last:]) / last
        mem = r["peak_memory_gib"]
        mem_cols = (f"{mem:.2f} | {mem / plain['peak_memory_gib']:.2f}x" if mem is not None else "n/a | n/a")
        lines.append(f"| {r['variant']} | {r['attn_implementation']} | {r['tokens_per_s']:,.0f} | "
                     f"{r['tokens_per_s'] / plain['tokens_per_s']:.2f}x | {mem_cols} | {loss:.4f} | "
                     f"{abs(loss - plain_loss):.2e} |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script itself")
    parser.add_argument("--vocab", type=int, default=128_256)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, default=2048)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--last", type=int, default=1, help="final loss = mean of the last N steps")
    parser.add_argument("--out", help="also write the results as JSON here")
    args = parser.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def main() -> int:
    args = parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("kernels_gpu.py needs a CUDA GPU (or --device cpu --smoke to check the script).", file=sys.stderr)
        return 2
    n_params = sum(p.numel() for p in build_model(args).parameters())
    info = versions(args.device)
    print(f"{n_params / 1e6:.0f}M-parameter Llama, vocab {args.vocab}, seq {args.seq_len}, batch {args.batch_size}, "
          f"bf16 autocast, {args.steps} steps ({args.warmup} untimed)")
    print(", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    results, skipped = [], {}
    for variant, names in VARIANTS.items():
        try:  # strict plugins on CUDA: a kernel that cannot run is reported, never silently replaced
            results.append(run_variant(names, args))
        except ConfigError as exc:
            skipped[variant] = str(exc)
            print(f"  {variant}: skipped: {exc}", flush=True)
            continue
        print(f"  {variant}: {results[-1]['tokens_per_s']:,.0f} tokens/s", flush=True)
    print(table(results, args.last))
    for variant, why in skipped.items():
        print(f"| {variant} | skipped: {why} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"versions": info, "args": vars(args), "parameters": n_params, "results": results,
                       "skipped": skipped}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
