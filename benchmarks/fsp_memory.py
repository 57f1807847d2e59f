"""Peak memory and time of one training step: NTP vs FSP-BCE (chunked), FSP-BCE (naive dense target), MTP.

Each variant runs the real training step (``LitplugModule.compute_losses``: one backbone pass, the
core's cross-entropy, the plugin's ``extra_losses``; then backward and an AdamW step) in a fresh
child process, so the peak resident memory of its steps can be read from ``ru_maxrss``. Ratios are
against the NTP step measured in the same invocation.

    .venv/bin/python benchmarks/fsp_memory.py                 # V = 32000, H = 256, 4 layers, B x T = 4 x 256
    .venv/bin/python benchmarks/fsp_memory.py --vocab 50257 --steps 5
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import statistics
import time
from types import SimpleNamespace

import litplug

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

VARIANTS = {
    "NTP": None,
    "FSP-BCE chunked": {"objective": "bce"},
    "FSP-BCE chunked, 64 pos/seq": {"objective": "bce", "positions_per_sequence": 64},
    "FSP-BCE naive dense target": "naive",
    "MTP (1 head)": {"objective": "mtp", "n_heads": 1},
}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class NaiveFSP:
    """FSP-BCE as one would first write it: a [B, T, V] multi-hot target and BCE over full logits."""

    def __init__(self, tau: int) -> None:
        self.tau = tau

    @litplug.hookimpl
    def extra_losses(self, module, batch, hidden):
        import torch
        import torch.nn.functional as F
        from litplug_fsp.windows import future_bags

        bags, valid = future_bags(batch["labels"], self.tau)
        logits = module.model.get_output_embeddings()(module.aux["fsp"](hidden))
        target = torch.zeros_like(logits)
        target.scatter_(2, bags.clamp(min=0), (bags >= 0).to(logits.dtype))
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(-1)
        return {"fsp_bce": loss[valid].mean()}


def measure(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    import torch
    from litplug_fsp.config import FSPConfig
    from litplug_fsp.heads import head_for
    from omegaconf import OmegaConf
    from transformers import LlamaConfig, LlamaForCausalLM

    from litplug.config import RootConfig
    from litplug.plugins import new_manager, register_all

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    variant = VARIANTS[name]
    cfg = OmegaConf.structured(RootConfig)
    cfg.data.seq_len = args.seq_len
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=4,
        intermediate_size=args.hidden * 8 // 3, max_position_embeddings=args.seq_len))
    tokenizer = SimpleNamespace(eos_token_id=2)
    plugins, aux = {}, {}
    if isinstance(variant, dict):
        from litplug_fsp.plugin import FSPPlugin

        options = FSPConfig(tau=args.tau, **variant)
        plugins["fsp"] = FSPPlugin(options)
        aux = plugins["fsp"].configure_model(model=model, tokenizer=tokenizer, config=cfg)
    elif variant == "naive":
        plugins["fsp"] = NaiveFSP(args.tau)
        aux = {"fsp": head_for(model, "block")}
    pm = new_manager()
    register_all(pm, plugins)
    from litplug.module import LitplugModule

    module = LitplugModule(cfg, model, tokenizer, pm, aux)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    ids = torch.randint(3, args.vocab, (args.batch, args.seq_len + 1))
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "attention_mask": torch.ones_like(ids[:, :-1])}
    baseline = rss_bytes()
    times = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        terms = module.compute_losses(dict(batch), "train")
        terms["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step > 0:  # the first step allocates the optimizer state: timed separately from the rest
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    queue.put((name, peak, statistics.median(times)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--tau", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    results = {}
    for name in VARIANTS:
        queue = ctx.Queue()
        proc = ctx.Process(target=measure, args=(name, args, queue))
        proc.start()
        results[name] = queue.get()[1:]
        proc.join()
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, "
          f"batch {args.batch} x {args.seq_len} tokens, tau {args.tau}, {args.threads} thread(s), "
          f"median of {args.steps} steps")
    ntp_peak, ntp_time = results["NTP"]
    print(f"{'variant':<30} {'peak MiB':>9} {'x NTP':>6} {'s/step':>8} {'x NTP':>6}")
    for name, (peak, seconds) in results.items():
        print(f"{name:<30} {peak / 2**20:>9.0f} {peak / ntp_peak:>6.2f} {seconds:>8.3f} {seconds / ntp_time:>6.2f}")


if __name__ == "__main__":
    main()
