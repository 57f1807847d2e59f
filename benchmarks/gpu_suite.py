"""The GPU suite: plain vs liger vs xformers vs liger+xformers, and the cost of FSP and S2D, on a ~270M-parameter
Llama in bf16, through litplug's own training path. Writes a markdown table (and the raw numbers as JSON).

Workload (issue 10's kernel benchmark, which this replaces): Llama, hidden 768, 12 layers, 12 heads / 4 KV heads,
MLP 2048, untied 128,256-token vocabulary; sequences of 2048, batch 4; ``bf16-mixed``; AdamW at lr 3e-4 (constant);
20 steps, the first 5 untimed (Triton compiles, allocator warm-up, S2D's first SVD). FSP and S2D run with their
defaults; ``s2d-all`` adds S2D with every linear layer penalised, since PCDR may select no layer of a freshly
initialised model (S2D then costs nothing between its SVD refreshes).

Each variant trains in its own child process, with the same seed (so the same initial weights) and the same
batches: random tokens whose second half repeats the first, so the loss falls. A child loads its plugins from a
config as ``litplug train`` does (``load_plugins``: entry points, config check, ``check_config``), builds the
module with ``litplug.run.build_module`` and trains it with a Lightning Trainer. The kernel plugins run with
``strict=true`` on CUDA, so a kernel that cannot run is a "skipped" row, never a silent fallback. One process
per variant because Liger patches transformers process-wide, and so that each peak-memory figure is that
variant's alone. The children are forked from a fork-server process that imported this script (torch,
Lightning, litplug) once and never touches CUDA.

Columns: tokens/s over the timed steps; peak CUDA memory (``max_memory_allocated``); MFU; the largest
|lm - lm of plain| over the steps (kernels must keep the loss; FSP and S2D change training by design).

    MFU = tokens/s * (6 N + 12 L d T) / (bf16 dense peak FLOP/s of the GPU)

N = parameters in matmuls (all but the input embedding table; the untied output head counts), L layers, d
hidden size, T sequence length. 6 N: forward and backward of the matmuls; 12 L d T: attention's QK^T and AV,
forward and backward, counting the full T x T score matrix (the PaLM paper's convention; a causal kernel skips
half). Every row uses the same model FLOPs, so FSP's head and S2D's penalty show as lower MFU. Peaks: A100
312, H100 SXM 989, H100 NVL 835, H100 PCIe 756, H200 and GH200 989 TFLOP/s; another GPU: MFU n/a (or give
``--peak-tflops``).

Time budget, ``--budget-s`` (default 420 s) for all variants: a variant may use what is left minus 15 s for each
variant still to come. At the end of its share it stops after the current step and reports the steps it has;
one still running 20 s later is killed. A variant with under 15 s left is "not run". The table is rewritten
after every variant, so an interrupted suite still leaves what it measured.

    make gpu-suite                                              # sets up .venv-gpu first; < 8 minutes on an H100
    .venv-gpu/bin/python benchmarks/gpu_suite.py --out gpu_suite.md
    .venv/bin/python benchmarks/gpu_suite.py --device cpu --smoke   # every variant, 2 tiny steps: checks the script
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import multiprocessing as mp
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

# The fork server imports this script once (as its __main__), so every child forked from it starts with these.
import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litplug.config import load_config
from litplug.errors import ConfigError, PluginNotInstalled
from litplug.plugins import load_plugins
from litplug.run import build_module


@dataclass(frozen=True)
class Variant:
    name: str
    plugins: tuple[str, ...]
    options: tuple[str, ...] = ()  # config overrides beyond the plugins' defaults
    note: str = ""


VARIANTS = (
    Variant("plain", ()), Variant("liger", ("liger",)), Variant("xformers", ("xformers",)),
    Variant("liger+xformers", ("liger", "xformers")), Variant("fsp", ("fsp",)), Variant("s2d", ("s2d",)),
    # PCDR may select no layer of a freshly initialised model, and then S2D costs nothing between refreshes
    Variant("s2d-all", ("s2d",), ("plugins.s2d.selection=all",), "selection=all, every linear layer penalised: "
            "S2D's per-step worst case"),
)
KERNEL_PACKAGES = {"liger": "liger_kernel", "xformers": "xformers"}  # plugin -> the library it runs
INSTALL_HINT = "make setup-gpu"
VERSIONS = ("torch", "triton", "liger-kernel", "xformers", "transformers", "lightning")
SMOKE = {"vocab": 512, "hidden_size": 64, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate_size": 128,
         "seq_len": 64, "batch_size": 2, "steps": 2, "warmup": 1}
# bf16 dense tensor-core peaks (NVIDIA data sheets), matched in this order against torch.cuda.get_device_name()
PEAK_BF16_DENSE = (("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H200", 989e12), ("H100", 989e12),
                   ("A100", 312e12))
LOSS_TARGET = 1e-2  # the litplug-liger card's |loss - plain| target
STOP_GRACE_S = 20.0  # after a child's soft deadline: time to finish its step and report before it is killed
MIN_VARIANT_S = 15.0  # a variant with less time than this left is not started
RESERVE_S = 15.0  # kept back per variant still to run, so a slow one cannot starve all that follow


def peak_bf16_flops(device_name: str) -> float | None:
    """The GPU's bf16 dense peak in FLOP/s, or None for a GPU not in the table (MFU is then n/a)."""
    for key, flops in PEAK_BF16_DENSE:
        if key in device_name:
            return flops
    return None


class RandomTokens:
    """The few tokenizer fields the model builder and the plugins read; the data are random ids, so there is no
    real tokenizer. FSP masks windows across EOS (id 2); the batches never contain ids below 3."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab

    def __len__(self) -> int:
        return self.vocab


def make_batches(args: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    """The same stream for every variant: random tokens whose second half repeats the first (learnable)."""
    generator = torch.Generator().manual_seed(1234)
    out = []
    for _ in range(args.steps):
        half = torch.randint(3, args.vocab, (args.batch_size, args.seq_len // 2 + 1), generator=generator)
        ids = torch.cat([half, half], dim=1)[:, : args.seq_len + 1]
        inputs = ids[:, :-1].contiguous()
        out.append({"input_ids": inputs, "labels": ids[:, 1:].contiguous(), "attention_mask": torch.ones_like(inputs)})
    return out


def overrides(args: argparse.Namespace, variant: Variant) -> list[str]:
    """The run config of one variant, as ``litplug train`` overrides."""
    found = [
        "model.architecture=llama", f"model.hidden_size={args.hidden_size}", f"model.num_hidden_layers={args.layers}",
        f"model.num_attention_heads={args.heads}", f"model.num_key_value_heads={args.kv_heads}",
        f"model.intermediate_size={args.intermediate_size}", f"model.max_position_embeddings={args.seq_len}",
        "model.tie_word_embeddings=false", "model.attn_implementation=sdpa",
        f"data.seq_len={args.seq_len}", f"data.batch_size={args.batch_size}",
        f"trainer.accelerator={args.device}", "trainer.precision=bf16-mixed", f"trainer.max_steps={args.steps}",
        "trainer.deterministic=false", f"optim.lr={args.lr}", "optim.warmup_steps=0", "optim.schedule=constant",
        "tracking.enabled=false", "run.seed=0",
    ]
    for name in variant.plugins:  # kernels strict on CUDA; every plugin otherwise with its defaults
        found.append(f"plugins.{name}.strict=true" if name in KERNEL_PACKAGES and args.device == "cuda"
                     else f"plugins.{name}.enabled=true")
    return found + list(variant.options)


class Meter(Callback):
    """Times the steps after ``warmup``, records the LM loss of every step, stops at the soft deadline."""

    def __init__(self, warmup: int, deadline: float, cuda: bool) -> None:
        self.warmup, self.deadline, self.cuda = warmup, deadline, cuda
        self.losses: list[torch.Tensor] = []
        self.started = self.ended = 0.0
        self.stopped_early = False

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _record_loss(self, trainer: L.Trainer) -> None:
        # Lightning updates callback_metrics after on_train_batch_end: step k's value is read at the start of
        # step k + 1 (and at the end of training), without a device sync
        value = trainer.callback_metrics.get("train/lm")
        if value is not None and len(self.losses) < trainer.global_step:
            self.losses.append(value.detach().clone())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._record_loss(trainer)
        if batch_idx == self.warmup:
            self._sync()
            self.started = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if time.monotonic() > self.deadline and not trainer.should_stop:
            trainer.should_stop = self.stopped_early = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync()
        self.ended = time.perf_counter()
        self._record_loss(trainer)


def train_variant(variant: Variant, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """One variant, in this (child) process: the measured row."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for noise in (".*does not have many workers.*", ".*no `val_dataloader`.*", ".*LeafSpec.*"):
        warnings.filterwarnings("ignore", noise)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ConfigError(f"torch {torch.__version__} sees no CUDA GPU (none here, or an NVIDIA driver too old for "
                          f"CUDA {torch.version.cuda}: `nvidia-smi` shows the driver's)")
    cfg = load_config(None, overrides(args, variant))
    pm, _, _ = load_plugins(cfg)  # a plugin the config names but nobody installed: PluginNotInstalled
    tokenizer = RandomTokens(args.vocab)
    module = build_module(SimpleNamespace(cfg=cfg, pm=pm, tokenizer=tokenizer))  # seeds, configure_model, aux
    model = module.model
    total = sum(p.numel() for p in model.parameters())
    embedding, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    matmul = total - (embedding.numel() if embedding is not head else 0)
    batches = make_batches(args)
    meter = Meter(args.warmup, deadline, cuda)
    callbacks: list[Callback] = [meter]
    for extra in pm.hook.callbacks(config=cfg):
        callbacks += list(extra or [])
    trainer = L.Trainer(
        max_steps=args.steps, accelerator=args.device, devices=1, precision="bf16-mixed",
        gradient_clip_val=cfg.trainer.gradient_clip_val, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=callbacks, deterministic=False, default_root_dir=args.root_dir,
    )
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    steps = trainer.global_step
    timed = steps - args.warmup
    row: dict[str, Any] = {
        "status": "ok", "steps": steps, "timed_steps": max(timed, 0), "stopped_early": meter.stopped_early,
        "attention": model.config._attn_implementation, "parameters": total, "matmul_parameters": matmul,
        "losses": torch.stack(meter.losses).float().tolist() if meter.losses else [],
        "tokens_per_s": (timed * args.batch_size * args.seq_len / (meter.ended - meter.started)
                         if timed > 0 else None),
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "device": torch.cuda.get_device_name() if cuda else "cpu", "cuda": torch.version.cuda, "notes": [],
    }
    if "s2d" in module.aux:  # one more SVD refresh, timed: S2D pays it every refresh_every steps
        decay = module.aux["s2d"]
        batch = {k: v.to(module.device) for k, v in batches[0].items()}
        meter._sync()
        started = time.perf_counter()
        decay.refresh(model, steps, batch)
        meter._sync()
        row["refresh_s"], row["refresh_every"] = time.perf_counter() - started, decay.cfg.refresh_every
        row["s2d_selected_layers"] = sum(k > 0 for k in decay.k_targets)
    xformers = sys.modules.get("xformers")
    if "xformers" in variant.plugins and xformers is not None and not getattr(xformers, "_has_cpp_library", True):
        row["notes"].append("xformers' C++ extension did not load (built for another torch/CUDA); its "
                            "memory_efficient_attention ran on PyTorch's flash/cutlass kernels")
    return row


def child(variant: Variant, args: argparse.Namespace, deadline: float, conn: Any) -> None:
    """A child process: measure one variant and send its row (or why there is none) to the parent."""
    try:
        row = train_variant(variant, args, deadline)
    except PluginNotInstalled as exc:
        row = {"status": "not installed", "why": str(exc).splitlines()[0]}
    except ConfigError as exc:  # e.g. strict kernels on a machine where they cannot run
        row = {"status": "skipped", "why": str(exc).splitlines()[0]}
    except Exception as exc:  # noqa: BLE001 - one broken variant must not lose the others' rows
        traceback.print_exc()
        row = {"status": "failed", "why": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}"}
    conn.send(row)
    conn.close()


def run_in_child(variant: Variant, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Run one variant in a child process, hard-killed ``seconds`` from now."""
    context = mp.get_context("forkserver")
    receive, send = context.Pipe(duplex=False)
    hard = time.monotonic() + seconds
    process = context.Process(target=child, args=(variant, args, hard - STOP_GRACE_S, send))
    process.start()
    send.close()  # the child holds the only writer: its death ends the pipe
    row = None
    try:
        if receive.poll(max(hard - time.monotonic(), 0.0)):
            row = receive.recv()
    except EOFError:
        pass
    process.join(5.0)
    if process.is_alive():
        process.kill()
        process.join()
        return row or {"status": "stopped", "why": f"killed at its time budget ({seconds:.0f} s)"}
    if row is None:
        return {"status": "failed", "why": f"the child process died (exit code {process.exitcode}); see its output"}
    return row


def package_versions() -> dict[str, str]:
    found = {}
    for package in VERSIONS:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def missing_kernels(variant: Variant) -> list[str]:
    """The kernel libraries a variant measures that are not installed (looked up, not imported)."""
    return [pkg for name in variant.plugins if (pkg := KERNEL_PACKAGES.get(name))
            and importlib.util.find_spec(pkg) is None]


def max_loss_gap(losses: list[float], plain: list[float]) -> float | None:
    steps = min(len(losses), len(plain))
    return max(abs(a - b) for a, b in zip(losses[:steps], plain[:steps])) if steps else None


def mfu(row: dict[str, Any], args: argparse.Namespace, peak: float | None) -> float | None:
    if peak is None or not row.get("tokens_per_s"):
        return None
    per_token = 6 * row["matmul_parameters"] + 12 * args.layers * args.hidden_size * args.seq_len
    return row["tokens_per_s"] * per_token / peak


def notes(variant: Variant, row: dict[str, Any], plain: dict[str, Any], gap: float | None,
          tokens_per_step: int) -> list[str]:
    name = variant.name
    found = ([variant.note] if variant.note else []) + list(row.get("notes", []))
    if row.get("stopped_early"):
        found.append(f"stopped at the time budget after {row['steps']} steps")
    if name in ("liger", "xformers", "liger+xformers") and gap is not None:
        found.append(f"loss {'within' if gap < LOSS_TARGET else 'ABOVE'} the {LOSS_TARGET:g} target")
    if "fsp" in variant.plugins or "s2d" in variant.plugins:
        found.append("adds a loss term: lm differs by design")
    if "refresh_s" in row and row.get("tokens_per_s") and plain.get("tokens_per_s"):
        m = row["refresh_every"]
        step, plain_step = tokens_per_step / row["tokens_per_s"], tokens_per_step / plain["tokens_per_s"]
        amortised = (step + row["refresh_s"] / m) / plain_step
        found.append(f"{row['s2d_selected_layers']} layers selected; SVD refresh {row['refresh_s']:.2f} s every {m} "
                     f"steps: amortised {amortised:.2f}x plain step time")
    return found


def table(results: dict[str, dict[str, Any]], args: argparse.Namespace, info: dict[str, Any]) -> str:
    """The report: a header saying what was measured on what, then a row per variant."""
    plain = results.get("plain", {})
    measured = next((r for r in results.values() if r.get("status") == "ok"), None)
    device = measured["device"] if measured else "(no variant measured)"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else (peak_bf16_flops(device) if args.device == "cuda"
                                                             else None)
    v = info["versions"]
    xformers = v["xformers"]
    cuda = measured["cuda"] if measured and measured["cuda"] else "-"
    lines = ["# litplug GPU suite", "",
             f"{device}, torch {v['torch']} (CUDA {cuda}), triton {v['triton']}, "
             f"liger-kernel {v['liger-kernel']}, xformers {xformers}, transformers {v['transformers']}, "
             f"lightning {v['lightning']}.", ""]
    size = f"{measured['parameters'] / 1e6:.3g}M-parameter " if measured else ""
    lines += [f"{size}Llama (hidden {args.hidden_size}, {args.layers} layers, {args.heads} heads / {args.kv_heads} KV, "
              f"MLP {args.intermediate_size}, untied vocabulary {args.vocab:,}), sequence {args.seq_len} x batch "
              f"{args.batch_size}, bf16-mixed, AdamW lr {args.lr:g}, {args.steps} steps ({args.warmup} untimed), one "
              f"process per variant; {info['elapsed_s']:.0f} s of a {args.budget_s:.0f} s budget.", ""]
    if peak:
        lines += [f"MFU = tokens/s x (6 N + 12 L d T) / {peak / 1e12:.0f} TFLOP/s (bf16 dense peak), N = "
                  f"{measured['matmul_parameters'] / 1e6:.0f}M parameters in matmuls (all but the input "
                  "embedding), L layers, d hidden size, T sequence length; the same model FLOPs for every row.", ""]
    else:
        lines += ["MFU n/a: no bf16 peak known for this device (give --peak-tflops).", ""]
    lines += [f"| variant | plugins | attention | tokens/s | vs plain | peak GiB | vs plain | MFU | "
              f"max \\|lm - plain\\| over {args.steps} steps | notes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        row = results.get(variant.name)
        if row is None:
            continue
        plugins = ", ".join(variant.plugins) or "-"
        if row.get("status") != "ok":
            lines.append(f"| {variant.name} | {plugins} | - | - | - | - | - | - | - | "
                         f"{row['status']}: {row.get('why', '')} |")
            continue
        ok_plain = plain.get("status") == "ok"
        tps = row["tokens_per_s"]
        speed = (f"{tps:,.0f} | {tps / plain['tokens_per_s']:.2f}x" if tps and ok_plain and plain["tokens_per_s"]
                 else (f"{tps:,.0f} | -" if tps else "- | -"))
        mem = row["peak_memory_gib"]
        memory = (f"{mem:.2f} | {mem / plain['peak_memory_gib']:.2f}x" if mem is not None and ok_plain
                  and plain["peak_memory_gib"] else "n/a | n/a")
        util = mfu(row, args, peak)
        gap = row.get("max_loss_gap")
        lines.append(f"| {variant.name} | {plugins} | {row['attention']} | {speed} | {memory} | "
                     f"{f'{util:.1%}' if util is not None else 'n/a'} | {f'{gap:.2e}' if gap is not None else '-'} | "
                     f"{'; '.join(notes(variant, row, plain, gap, args.batch_size * args.seq_len))} |")
    lines += ["", f"Targets (litplug-liger card): liger peak memory <= 0.6x plain, tokens/s >= 1.1x plain, "
              f"|lm - plain| < {LOSS_TARGET:g}."]
    return "\n".join(lines) + "\n"


def write(results: dict[str, dict[str, Any]], args: argparse.Namespace, info: dict[str, Any]) -> str:
    text = table(results, args, info)
    Path(args.out).write_text(text)
    Path(args.json).write_text(json.dumps({"args": vars(args), **info, "results": results}, indent=2))
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and 2 steps, to check the script itself")
    parser.add_argument("--vocab", type=int, default=128_256)
    parser.add_argument("--hidden-size", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, default=2048)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of all variants together")
    parser.add_argument("--variants", default=",".join(v.name for v in VARIANTS),
                        help="comma-separated subset (plain always runs: every ratio is against it)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's bf16 dense peak, for a GPU not in the table")
    parser.add_argument("--out", default="gpu_suite.md", help="the markdown table")
    parser.add_argument("--json", help="the raw results (default: --out with .json)")
    parser.add_argument("--root-dir", default="runs/gpu_suite", help="Lightning's default_root_dir")
    if parser.parse_known_args(argv)[0].smoke:  # the smoke sizes are defaults: --smoke --steps 50 works
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must be larger than --warmup ({args.warmup})")
    names = {v.name for v in VARIANTS}
    chosen = {"plain", *(n.strip() for n in args.variants.split(",") if n.strip())}
    if unknown := chosen - names:
        parser.error(f"unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(names)}")
    args.variants = ",".join(v.name for v in VARIANTS if v.name in chosen)
    args.json = args.json or str(Path(args.out).with_suffix(".json"))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite.py needs a CUDA GPU (or --device cpu --smoke to check the script).", file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.budget_s
    chosen = [v for v in VARIANTS if v.name in args.variants.split(",")]
    info: dict[str, Any] = {"versions": package_versions(), "elapsed_s": 0.0}
    results: dict[str, dict[str, Any]] = {}
    for i, variant in enumerate(chosen):
        left = deadline - time.monotonic() - RESERVE_S * (len(chosen) - i - 1)
        if missing := missing_kernels(variant):
            row = {"status": "not installed", "why": f"{', '.join(missing)} ({INSTALL_HINT} installs it)"}
        elif results.get("plain", {"status": "ok"})["status"] != "ok":
            row = {"status": "not run", "why": "plain was not measured, so nothing to compare with"}
        elif left < MIN_VARIANT_S:
            row = {"status": "not run", "why": "the time budget is spent"}
        else:
            print(f"{variant.name}: training ({left:.0f} s left for it)", flush=True)
            row = run_in_child(variant, args, left)
        reference = results.get("plain", row)  # plain runs first, against itself
        if row["status"] == "ok" and reference["status"] == "ok":
            row["max_loss_gap"] = max_loss_gap(row["losses"], reference["losses"])
        results[variant.name] = row
        info["elapsed_s"] = time.monotonic() - started
        print(f"{variant.name}: {row['status']}" + (f" ({row['why']})" if row.get("why") else ""), flush=True)
        text = write(results, args, info)
    print(text, end="")
    print(f"Wrote {args.out} and {args.json}.")
    return 0 if results["plain"]["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
