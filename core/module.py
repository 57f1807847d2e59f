"""The LightningModule: one backbone pass per step, the loss composed from the plugins' hooks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import pluggy
import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase, get_scheduler

from litplug.context import StepContext
from litplug.errors import RunFailure
from litplug.head import OutputHead, backbone_hidden, head_transform

METRICS_KEY = "litplug_train_metrics"
STEP_KEY = "step"  # Lightning's logger connector pops it and uses it as the metrics' step


class NonFiniteLoss(RunFailure):
    """A loss term became NaN/inf; the message names the step and the offending terms."""


class LitplugModule(L.LightningModule):
    """Wraps an HF causal LM. ``aux`` holds the plugins' training-only modules (never exported)."""

    def __init__(self, cfg: DictConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 pm: pluggy.PluginManager, aux: dict[str, torch.nn.Module] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model
        self.tokenizer = tokenizer
        self.pm = pm
        self.aux = torch.nn.ModuleDict(aux or {})
        self._head_transform = head_transform(model.config)  # checked against HF's forward in run.build_module
        self._step_started = 0.0
        self._last_step_started = -1
        self.restored_metrics: dict[str, float] = {}  # the checkpoint's training metrics, when resumed

    def configure_model(self) -> None:
        """Lightning's hook for parallelism: with ``trainer.strategy=fsdp`` (Lightning's ModelParallelStrategy
        gives the module a device mesh) the model is sharded with FSDP2 (:mod:`litplug.sharding`)."""
        mesh = getattr(self, "_device_mesh", None)
        if mesh is not None and not getattr(self, "_sharded", False):
            from litplug.sharding import shard

            shard(self, mesh["data_parallel"])
            self._sharded = True

    # -- the forward pass every loss hook shares --------------------------------------------------
    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states [B, T, H] of the backbone (after its final norm).

        Batches are right-padded and causal, so padding never influences a real position: no
        attention mask is passed, which keeps SDPA on its fast causal path.
        """
        return backbone_hidden(self.model, input_ids)

    @property
    def output_head(self) -> OutputHead:
        """The model's own output head (projection, logit scaling, soft-capping): ``output_head.logits(hidden)``
        equals ``model(input_ids).logits``. Built on each access, so a resized or wrapped projection is seen."""
        return OutputHead(self.model.get_output_embeddings(), *self._head_transform)

    def compute_losses(self, batch: dict[str, torch.Tensor], stage: str) -> dict[str, torch.Tensor]:
        """``{"lm": ..., <plugin terms>..., "loss": total}`` for one batch."""
        hook = self.pm.hook
        ctx = StepContext(self, stage, batch)
        hook.transform_batch(batch=batch, stage=stage, ctx=ctx)
        ctx.hidden = self.hidden_states(batch["input_ids"])
        terms = {"lm": hook.lm_loss(hidden=ctx.hidden, head=ctx.head, labels=batch["labels"], ctx=ctx)}
        for extra in hook.extra_losses(ctx=ctx, batch=batch, hidden=ctx.hidden):
            for name, value in (extra or {}).items():
                if name in terms:
                    raise RuntimeError(f"two plugins return a loss term named '{name}'")
                terms[name] = value
        terms["loss"] = sum(terms.values())
        return terms

    # -- Lightning hooks ---------------------------------------------------------------------------
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self._step_started = time.perf_counter()
        if self.global_step != self._last_step_started:  # once per optimizer step, not per micro-batch
            self._last_step_started = int(self.global_step)
            self.pm.hook.on_step_start(ctx=StepContext(self, "train", batch))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        terms = self.compute_losses(batch, "train")
        bad = [name for name, value in terms.items() if name != "loss" and not torch.isfinite(value).all()]
        if bad:
            raise NonFiniteLoss(
                f"Non-finite loss at step {self.global_step + 1}: term(s) {', '.join(bad)} "
                f"({', '.join(f'{n}={terms[n].item()}' for n in bad)}). {self._checkpoint_note()} "
                "Lower optim.lr or check the plugin that owns the term."
            )
        for name, value in terms.items():
            self.log(f"train/{name}", value.detach(), prog_bar=True, batch_size=batch["input_ids"].shape[0])
        self._log_step(self.global_step + 1)
        return terms["loss"]

    def _checkpoint_note(self) -> str:
        """Whether a checkpoint to resume from exists: the message must not promise one that does not."""
        callback = self.trainer.checkpoint_callback if self._trainer is not None else None
        directory = getattr(callback, "dirpath", None)
        if directory and any(Path(directory).glob("*.ckpt")):
            return f"The last good checkpoint is kept in {directory} (re-running resumes from it)."
        return "No checkpoint had been written yet, so there is nothing to resume from."

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # never replace the last good checkpoint with weights an update just made non-finite
        bad = [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise NonFiniteLoss(
                f"Non-finite weights after step {self.global_step} ({len(bad)} tensor(s), e.g. {bad[0]}): the "
                f"update that made them is not checkpointed. {self._checkpoint_note()} Lower optim.lr, or "
                "check trainer.gradient_clip_val and the plugins' loss terms."
            )
        # the step's training metrics: a run resumed from its final checkpoint trains no step, and still
        # reports them (litplug.run.finish)
        checkpoint[METRICS_KEY] = {k: float(v) for k, v in self.trainer.callback_metrics.items()
                                   if k.startswith(("train/", "data/"))}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.restored_metrics = dict(checkpoint.get(METRICS_KEY, {}))

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._step_started
        if elapsed > 0:
            n_tokens = batch["input_ids"].numel()
            self.log("train/tokens_per_s", n_tokens / elapsed, batch_size=1)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)

    def _log_step(self, step: int, sync_dist: bool = False) -> None:
        """Lightning logs at its count of batches that stepped *before* this one (0 for the first step), so a
        100-step run's last training and validation metrics would sit at step 99 and the evaluation at 100.
        A logged ``step`` is Lightning's documented override: every metric sits at the optimizer step that
        produced it (1..max_steps), where the end-of-run evaluation and ``litplug eval`` log too. Logged in
        ``training_step`` (the step this batch counts towards), so that callbacks at the end of the batch
        (ModelCheckpoint's ``{step}`` file name) already see the new value."""
        self.log(STEP_KEY, float(step), batch_size=1, sync_dist=sync_dist)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self.pm.hook.after_optimizer_step(ctx=StepContext(self, "train"), step=self.global_step + 1)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        terms = self.compute_losses(batch, "validate")
        names = self.trainer.datamodule.names if self.trainer.datamodule is not None else []
        source = names[dataloader_idx] if dataloader_idx < len(names) else str(dataloader_idx)
        n = batch["input_ids"].shape[0]
        # sync_dist: under DDP/FSDP each rank validates its own share of the rows; report the mean over all
        self.log(f"val/{source}/loss", terms["lm"], add_dataloader_idx=False, batch_size=n, sync_dist=True)
        self.log(f"val/{source}/perplexity", torch.exp(terms["lm"].clamp(max=50)), add_dataloader_idx=False,
                 batch_size=n, sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        self._log_step(self.global_step, sync_dist=True)  # the same on every rank; says so to Lightning

    def configure_optimizers(self) -> dict[str, Any]:
        """The plugins' optimizer (``configure_optimizer``, AdamW by default) under the core's schedule."""
        o = self.cfg.optim
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if param.requires_grad:
                (no_decay if param.ndim < 2 or "norm" in name else decay).append(param)
        groups = [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        optimizer = self.pm.hook.configure_optimizer(param_groups=groups, config=self.cfg)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"configure_optimizer returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
        kind = "cosine" if o.schedule == "cosine" else "constant_with_warmup"
        scheduler = get_scheduler(kind, optimizer, num_warmup_steps=o.warmup_steps,
                                  num_training_steps=self.cfg.trainer.max_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
