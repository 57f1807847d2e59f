"""Training throughput against the tools a user would pick instead: litplug (`litplug train`'s own code
path, no plugins) vs Hugging Face `Trainer` vs a plain hand-written LightningModule.

All three train the same model (same config, same initial weights), on the same token rows, with the
same batch, AdamW (lr, betas, eps), constant LR, gradient clipping at 1.0 and fp32 on CPU, and none of them
with torch's deterministic algorithms (HF Trainer's and Lightning's default); litplug's own default,
``trainer.deterministic: true`` (what makes a resumed run bit-exact), is a fourth row, divided by HF
Trainer, so its cost shows on its own. litplug runs as a user runs it: `litplug.run.setup` +
`litplug.run.train` (its litdata stream from a text file, its checkpointing, logging and callbacks;
tracking off); the others read the rows litplug tokenised, from
memory. Time is the interval between consecutive optimizer-step ends (data loading, logging and
callbacks included), median over the steps after a warm-up; tokens/s = batch x seq / that. Rounds
alternate the order of the three, in one process. Goal: litplug >= 1.0x HF Trainer.

    python benchmarks/vs_hf_trainer.py [--rounds 5] [--steps 40] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from litplug import hookimpl  # noqa: E402
from litplug import run as run_mod  # noqa: E402
from litplug.data.prepare import build_rows  # noqa: E402
from litplug.data.sources import read_examples  # noqa: E402
from litplug.model import build_model  # noqa: E402

WARMUP = 5  # step intervals dropped at the start of every run


class StepEnds(L.Callback):
    """Wall-clock time of every optimizer-step end (Lightning)."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, *args: Any) -> None:
        self.ends.append(time.perf_counter())


class HFStepEnds(TrainerCallback):
    """The same for HF Trainer."""

    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.ends.append(time.perf_counter())


class _Timing:
    """A litplug plugin that only adds the timing callback, registered like any other."""

    def __init__(self, callback: StepEnds) -> None:
        self.callback = callback

    @hookimpl
    def callbacks(self, config: Any) -> list[L.Callback]:
        return [self.callback]


class PlainModule(L.LightningModule):
    """What a researcher would write by hand: the HF loss, AdamW, log the loss."""

    def __init__(self, model: torch.nn.Module, optim: Any) -> None:
        super().__init__()
        self.model, self.optim = model, optim

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = self.model(input_ids=batch[:, :-1], labels=batch[:, :-1]).loss
        self.log("train/loss", loss.detach())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.optim
        return torch.optim.AdamW(self.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)


class RowDataset(torch.utils.data.Dataset):
    """HF Trainer's view of the rows: ``input_ids`` and ``labels`` (the model shifts them itself)."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = self.rows[i, :-1]
        return {"input_ids": ids, "labels": ids}


def tokens_per_s(ends: list[float], tokens_per_step: int) -> float:
    gaps = [b - a for a, b in zip(ends[WARMUP:], ends[WARMUP + 1:])]
    return tokens_per_step / statistics.median(gaps)


def write_text(path: Path, n_docs: int) -> None:
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "sum", "of", "the", "and", "12", "345", "=", "+"]
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(60)) for _ in range(n_docs)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--litplug", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra override for the litplug run (e.g. trainer.deterministic=false)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="litplug-vs-hf-"))
    corpus = work / "corpus.txt"
    write_text(corpus, 3000)
    overrides = [
        f"data.sources=[{{path: {corpus}}}]", "data.tokenizer=byte", f"data.seq_len={args.seq}",
        f"data.batch_size={args.batch}", f"model.hidden_size={args.hidden}", f"model.num_hidden_layers={args.layers}",
        f"model.intermediate_size={4 * args.hidden}", f"model.max_position_embeddings={args.seq}",
        f"trainer.max_steps={args.steps}", "trainer.checkpoint_every_n_steps=1000000", "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=10", "trainer.progress=lines", "tracking.enabled=false", "optim.warmup_steps=0",
        "optim.schedule=constant", f"run.output_dir={work / 'runs'}", f"data.cache_dir={work / 'cache'}",
        *args.litplug,
    ]
    probe = run_mod.setup(None, [*overrides, "run.name=probe"])  # tokenises the corpus once, for every round
    cfg, tokenizer = probe.cfg, probe.tokenizer
    rows = torch.from_numpy(build_rows(tokenizer, read_examples(probe.sources[0], "train", cfg.data.seed),
                                       args.seq, "corpus")[:, :-2]).long()
    tokens_per_step = args.batch * args.seq

    def litplug_round(r: int, deterministic: bool = False) -> float:
        timer = StepEnds()
        run = run_mod.setup(None, [*overrides, f"run.name=r{r}{'d' if deterministic else ''}",
                                   f"trainer.deterministic={str(deterministic).lower()}"])
        run.pm.register(_Timing(timer), name="bench-timing")
        run_mod.train(run)
        return tokens_per_s(timer.ends, tokens_per_step)

    def fresh_model() -> torch.nn.Module:
        L.seed_everything(cfg.run.seed, verbose=False)  # litplug's own init seed
        return build_model(cfg.model, tokenizer)

    def hf_round(r: int) -> float:
        timer = HFStepEnds()
        o = cfg.optim
        targs = TrainingArguments(
            output_dir=str(work / f"hf{r}"), per_device_train_batch_size=args.batch, max_steps=args.steps,
            learning_rate=o.lr, adam_beta1=o.betas[0], adam_beta2=o.betas[1], adam_epsilon=o.eps, weight_decay=0.0,
            lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0, logging_steps=10, save_strategy="no",
            eval_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True,
            seed=cfg.run.seed, optim="adamw_torch")
        Trainer(model=fresh_model(), args=targs, train_dataset=RowDataset(rows), callbacks=[timer]).train()
        return tokens_per_s(timer.ends, tokens_per_step)

    def plain_round(r: int) -> float:
        timer = StepEnds()
        loader = torch.utils.data.DataLoader(rows, batch_size=args.batch, shuffle=True,
                                             generator=torch.Generator().manual_seed(r))
        trainer = L.Trainer(max_steps=args.steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                            log_every_n_steps=10, gradient_clip_val=1.0, num_sanity_val_steps=0)
        trainer.fit(PlainModule(fresh_model(), cfg.optim), train_dataloaders=loader)
        return tokens_per_s(timer.ends, tokens_per_step)

    runners = {"litplug": litplug_round, "HF Trainer": hf_round, "plain Lightning": plain_round,
               "litplug, deterministic": lambda r: litplug_round(r, deterministic=True)}
    measured: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.rounds):
        order = list(runners)[r % len(runners):] + list(runners)[: r % len(runners)]  # rotate who goes first
        for name in order:
            measured[name].append(runners[name](r))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{n} {measured[n][-1]:.0f} tok/s" for n in runners),
              flush=True)

    ratios = {other: [a / b for a, b in zip(measured["litplug"], measured[other])]
              for other in ("HF Trainer", "plain Lightning")}
    ratios["litplug, deterministic"] = [a / b for a, b in zip(measured["litplug, deterministic"],
                                                                measured["HF Trainer"])]
    print(f"\nmodel: Llama hidden={args.hidden} layers={args.layers}, seq={args.seq}, batch={args.batch}, fp32 CPU, "
          f"torch threads={torch.get_num_threads()}; {args.rounds} alternating rounds x {args.steps} steps\n")
    print("| trainer | tokens/s (median of rounds) | litplug ÷ it (median, min-max over rounds) |")
    # the last row is the other way round: litplug with its default deterministic=true, divided by HF Trainer
    print("|---|---|---|")
    for name in runners:
        rs = ratios.get(name)
        shown = f"{statistics.median(rs):.3f} ({min(rs):.3f}-{max(rs):.3f})" if rs else "—"
        print(f"| {name} | {statistics.median(measured[name]):.0f} | {shown} |")


if __name__ == "__main__":
    main()
