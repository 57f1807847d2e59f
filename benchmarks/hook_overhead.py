"""Time per training step: litplug with no plugins vs a plain hand-written LightningModule.

Both train the same HF model on the same batches inside the same Lightning Trainer settings,
alternating round by round in one process (one torch thread by default: steadier on a shared
machine). Each round gives a ratio of median step times (litplug / plain); the median ratio over
rounds, with its spread, is the cost of litplug's hook dispatch, loss composition and logging.
Target: ratio <= 1.03.

    python benchmarks/hook_overhead.py [--rounds 10] [--steps 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from litplug.config import RootConfig  # noqa: E402
from litplug.model import build_model, byte_tokenizer  # noqa: E402
from litplug.module import LitplugModule  # noqa: E402
from litplug.plugins import new_manager, register_all  # noqa: E402


class PlainModule(L.LightningModule):
    """What a researcher would write by hand: HF loss, AdamW, log the loss."""

    def __init__(self, model: torch.nn.Module, lr: float) -> None:
        super().__init__()
        self.model = model
        self.lr = lr

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        tokens = torch.cat([batch["input_ids"], batch["labels"][:, -1:]], dim=1)
        loss = self.model(input_ids=tokens, labels=tokens).loss
        self.log("train/loss", loss.detach())
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr)


class StepTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args: object) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args: object) -> None:
        self.times.append(time.perf_counter() - self._start)


def make_batches(vocab: int, n: int, batch: int, seq: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        tokens = torch.randint(4, vocab, (batch, seq + 1), generator=g)
        out.append({"input_ids": tokens[:, :-1], "labels": tokens[:, 1:]})
    return out


def time_module(module: L.LightningModule, batches: list, steps: int) -> list[float]:
    timer = StepTimer()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[timer],
                        log_every_n_steps=1)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    return timer.times[3:]  # drop warm-up steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cfg = OmegaConf.structured(RootConfig)
    cfg.model.hidden_size, cfg.model.num_hidden_layers = args.hidden, args.layers
    cfg.model.intermediate_size = 4 * args.hidden
    cfg.optim.warmup_steps, cfg.optim.schedule, cfg.trainer.max_steps = 0, "constant", args.steps
    tokenizer = byte_tokenizer()
    batches = make_batches(len(tokenizer), args.steps, args.batch, args.seq)
    plain_times: list[float] = []
    litplug_times: list[float] = []
    ratios: list[float] = []
    for round_ in range(args.rounds):
        # alternate which one goes first, so drift within a round does not favour either
        order = ("plain", "litplug") if round_ % 2 == 0 else ("litplug", "plain")
        times: dict[str, list[float]] = {}
        for which in order:
            torch.manual_seed(round_)
            model = build_model(cfg.model, tokenizer)
            if which == "plain":
                module: L.LightningModule = PlainModule(model, cfg.optim.lr)
            else:
                pm = new_manager()
                register_all(pm, {})
                module = LitplugModule(cfg, model, tokenizer, pm)
            times[which] = time_module(module, batches, args.steps)
        plain_times += times["plain"]
        litplug_times += times["litplug"]
        ratios.append(statistics.median(times["litplug"]) / statistics.median(times["plain"]))
    plain, ours = statistics.median(plain_times), statistics.median(litplug_times)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"model: hidden={args.hidden} layers={args.layers} seq={args.seq} batch={args.batch}, "
          f"torch threads={torch.get_num_threads()}, {args.rounds} rounds x {args.steps} steps")
    print(f"median step: plain LightningModule {plain * 1e3:.1f} ms, litplug (no plugins) {ours * 1e3:.1f} ms")
    print(f"ratio litplug / plain = {statistics.median(ratios):.3f} (median of {args.rounds} rounds; "
          f"interquartile {q1:.3f}-{q3:.3f})  (target <= 1.03)")

if __name__ == "__main__":
    main()
