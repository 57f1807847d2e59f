"""Peak memory and time of one training step: NTP vs FSP-BCE (chunked), FSP-BCE (naive dense target), MTP.

Each variant runs the real training step (``LitplugModule.compute_losses``: one backbone pass, the
core's cross-entropy, the plugin's ``extra_losses``; then backward and an AdamW step). Peak memory:
each variant in a fresh child process, read from ``ru_maxrss`` above the built model. Time: all
variants in one child process, stepping in turn, median per variant. Ratios are against NTP.

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
    def extra_losses(self, ctx, batch, hidden):
        import torch
        import torch.nn.functional as F
        from litplug_fsp.windows import future_bags

        bags, valid = future_bags(batch["labels"], self.tau)
        logits = ctx.model.get_output_embeddings()(ctx.aux["fsp"](hidden))
        target = torch.zeros_like(logits)
        target.scatter_(2, bags.clamp(min=0), (bags >= 0).to(logits.dtype))
        loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(-1)
        return {"fsp_bce": loss[valid].mean()}


def build(name: str, args: argparse.Namespace):
    """The LitplugModule, optimizer and batch of one variant; every variant gets the same trunk."""
    import torch
    from litplug_fsp.config import FSPConfig
    from litplug_fsp.heads import head_for
    from litplug_fsp.plugin import FSPPlugin
    from omegaconf import OmegaConf
    from transformers import LlamaConfig, LlamaForCausalLM

    from litplug.config import RootConfig
    from litplug.module import LitplugModule
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
        plugins["fsp"] = FSPPlugin(FSPConfig(tau=args.tau, **variant))
        aux = plugins["fsp"].configure_model(model=model, tokenizer=tokenizer, config=cfg)
    elif variant == "naive":
        plugins["fsp"] = NaiveFSP(args.tau)
        aux = {"fsp": head_for(model, "block")}
    pm = new_manager()
    register_all(pm, plugins)
    module = LitplugModule(cfg, model, tokenizer, pm, aux)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    ids = torch.randint(3, args.vocab, (args.batch, args.seq_len + 1))
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "attention_mask": torch.ones_like(ids[:, :-1])}
    return module, optimizer, batch


def train_step(module, optimizer, batch) -> float:
    start = time.perf_counter()
    module.compute_losses(dict(batch), "train")["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def peak_memory(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Child process: resident-memory high-water mark of two steps above the built model."""
    step = build(name, args)
    baseline = rss_bytes()
    for _ in range(2):  # the first step also allocates the optimizer state
        train_step(*step)
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline)


def step_times(args: argparse.Namespace, queue: mp.Queue) -> None:
    """Child process: all variants side by side, one step each in turn, so load changes hit them alike."""
    steps = {name: build(name, args) for name in VARIANTS}
    for step in steps.values():
        train_step(*step)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.steps):
        for name, step in steps.items():
            times[name].append(train_step(*step))
    queue.put({name: statistics.median(t) for name, t in times.items()})


def in_child(target, *args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--tau", type=int, default=12)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    args = parser.parse_args()
    # Large blocks straight from mmap and back to the OS when freed: resident memory then follows
    # the live tensors, and the high-water mark is the step's peak (glibc reads this at start-up).
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    peaks = {name: in_child(peak_memory, name, args) for name in VARIANTS}
    times = in_child(step_times, args)
    print(f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, "
          f"batch {args.batch} x {args.seq_len} tokens, tau {args.tau}, {args.threads} thread(s), "
          f"median of {args.steps} interleaved steps")
    print(f"{'variant':<30} {'peak MiB':>9} {'x NTP':>6} {'s/step':>8} {'x NTP':>6}")
    for name in VARIANTS:
        print(f"{name:<30} {peaks[name] / 2**20:>9.0f} {peaks[name] / peaks['NTP']:>6.2f} "
              f"{times[name]:>8.3f} {times[name] / times['NTP']:>6.2f}")


if __name__ == "__main__":
    main()
