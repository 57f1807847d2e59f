"""A Lightning callback that keeps early finetuning checkpoints as plain HF directories.

WiSE-FT needs θ_early next to the final θ_late. The callback exports the model right after the
optimizer steps listed in ``keep_steps`` (``<run>/wise_ft/step_<N>``) and, when scoring is on,
samples validation answers every ``score_every_n_steps`` steps, logs pass@k / majority vote (the
pass@k-over-training curve shows where diversity collapses) and keeps the best-scoring step as
``<run>/wise_ft/best``. Its state (scores so far, best step, kept steps) goes into Lightning's
checkpoint, so a resumed run picks the same best step as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from litplug.data.sources import SourceSpec, has_answers, read_examples, source_name
from litplug.errors import ConfigError
from litplug.module import LitplugModule
from litplug.weights import export_hf
from litplug_wise_ft.config import WiseFTConfig
from litplug_wise_ft.scoring import mlflow_key, score_model

BEST_DIR = "best"
SELECTION_FILE = "selection.json"


def step_dir(step: int) -> str:
    return f"step_{step}"


def pick_source(sources: list[SourceSpec], wanted: str | None) -> SourceSpec:
    """The source scored: the one named ``wanted``, else the first with a prompt/answer form."""
    answerable = [s for s in sources if has_answers(s)]
    if wanted is not None:
        named = [s for s in sources if source_name(s) == wanted]
        if not named:
            raise ConfigError(f"plugins.wise_ft.score_source '{wanted}' is not a data source of this run "
                              f"(sources: {', '.join(source_name(s) for s in sources)}).")
        if not has_answers(named[0]):
            raise ConfigError(f"plugins.wise_ft.score_source '{wanted}' has no prompt/answer form, so pass@k "
                              "cannot be scored on it; name a task source such as arithmetic.")
        return named[0]
    if not answerable:
        raise ConfigError("plugins.wise_ft.score_every_n_steps > 0 needs a prompt/answer data source to score "
                          "pass@k on, but this run has none; set score_every_n_steps: 0.")
    return answerable[0]


class EarlyCheckpointKeeper(Callback):
    """Exports θ at chosen steps and the best step by validation pass@k (rank 0 only)."""

    def __init__(self, cfg: WiseFTConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.root = Path(run_dir) / cfg.output_subdir
        self.history: list[dict[str, Any]] = []  # one entry per scored step
        self.best: dict[str, Any] | None = None  # {"step", "metric", "value"}
        self.kept: list[int] = []

    # -- checkpointed state --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best, "kept": self.kept}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.best = state_dict.get("best")
        self.kept = list(state_dict.get("kept", []))

    # -- Lightning hooks -------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: LitplugModule) -> None:
        if self.cfg.score_every_n_steps:  # fail before training, not at the first scoring step
            pick_source(trainer.datamodule.sources, self.cfg.score_source)
        if trainer.global_step == 0:
            self._at_step(trainer, pl_module, 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: LitplugModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._at_step(trainer, pl_module, trainer.global_step)

    # -- work ----------------------------------------------------------------------------------------
    def _at_step(self, trainer: L.Trainer, pl_module: LitplugModule, step: int) -> None:
        """Idempotent per step: with gradient accumulation several batches end at one global step."""
        if not trainer.is_global_zero:
            return
        if step in self.cfg.keep_steps and step not in self.kept:
            self._export(pl_module, self.root / step_dir(step))
            self.kept.append(step)
            self._write_selection()
        every = self.cfg.score_every_n_steps
        if every and step % every == 0 and all(h["step"] != step for h in self.history):
            self._score(trainer, pl_module, step)

    def _score(self, trainer: L.Trainer, pl_module: LitplugModule, step: int) -> None:
        c = self.cfg
        spec = pick_source(trainer.datamodule.sources, c.score_source)
        examples = read_examples(spec, c.score_split, pl_module.cfg.data.seed)[: c.score_num_examples]
        model = pl_module.model
        was_training = model.training
        device = next(model.parameters()).device
        # Sampling reseeds torch's global RNG; fork it so training randomness is untouched.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            scores = score_model(model, pl_module.tokenizer, pl_module.pm, examples, c.score_n, list(c.score_k),
                                 c.score_temperature, pl_module.cfg.run.seed, c.score_batch_size,
                                 c.score_max_new_tokens)
        model.train(was_training)
        self.history.append({"step": step, **scores})
        value = scores[c.select_metric]
        eligible = c.select_min_step <= step <= (step if c.select_max_step is None else c.select_max_step)
        if eligible and (self.best is None or value > self.best["value"]):
            self._export(pl_module, self.root / BEST_DIR)
            self.best = {"step": step, "metric": c.select_metric, "value": value}
        for logger in trainer.loggers:
            logger.log_metrics({f"wise_ft/{mlflow_key(k)}": v for k, v in scores.items()}, step=step)
        shown = " ".join(f"{k}={v:.3f}" for k, v in scores.items())
        best = f"step {self.best['step']}" if self.best else "none yet"
        print(f"wise_ft: step {step} {source_name(spec)}/{c.score_split}: {shown} (best {c.select_metric}: {best})",
              flush=True)
        self._write_selection()

    def _export(self, pl_module: LitplugModule, target: Path) -> None:
        """Export exactly what the end of training would: plugins' ``export_model`` changes are applied
        to a copy, so training continues on the untouched model."""
        model = pl_module.model
        if pl_module.pm.hook.export_model.get_hookimpls():
            model = copy.deepcopy(model)
            pl_module.pm.hook.export_model(model=model, tokenizer=pl_module.tokenizer, config=pl_module.cfg)
        export_hf(model, pl_module.tokenizer, target)

    def _write_selection(self) -> None:
        """``selection.json``: every scored step, the best one and the kept steps (written atomically)."""
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"select_metric": self.cfg.select_metric, "best": self.best, "kept_steps": self.kept,
                "history": self.history,
                "dirs": {"best": str(self.root / BEST_DIR) if self.best else None,
                         **{str(s): str(self.root / step_dir(s)) for s in self.kept}}}
        tmp = self.root / f".{SELECTION_FILE}.tmp"
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, self.root / SELECTION_FILE)
