"""The step context: what a step hook sees instead of the LightningModule.

A hook gets a :class:`StepContext` for one batch: the stage, the step counter, the rank, the model and
the plugins' auxiliary modules, the tokenizer and config, a ``log`` that lands in MLflow, and the
model's logits computed lazily, at most once per batch and shared by every plugin (so a fused
``lm_loss`` never materialises them unless some plugin asks). Plugins never need the module's
internals or Lightning's trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy
    import torch
    from omegaconf import DictConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from litplug.head import OutputHead
    from litplug.module import LitplugModule

STAGES = ("train", "validate", "test", "final")


class StepContext:
    """One batch (or, for ``final_metrics``, the end of training) as the hooks see it.

    Attributes: ``stage`` ("train", "validate", "test" or "final"), ``global_step`` (optimizer steps
    completed so far), ``rank`` / ``world_size``, ``model`` (the HF model), ``aux`` (the auxiliary modules
    by name), ``tokenizer``, ``config`` (the whole resolved run config), ``batch`` and ``hidden`` (set once
    the backbone has run).
    """

    def __init__(self, module: LitplugModule, stage: str, batch: dict[str, torch.Tensor] | None = None) -> None:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self._module = module
        self.stage = stage
        self.batch = batch
        self.hidden: torch.Tensor | None = None
        self._logits: torch.Tensor | None = None

    # -- the run -------------------------------------------------------------------------------------
    @property
    def global_step(self) -> int:
        return int(self._module.global_step)

    @property
    def rank(self) -> int:
        return int(self._module.global_rank)

    @property
    def world_size(self) -> int:
        trainer = self._module._trainer
        return int(trainer.world_size) if trainer is not None else 1

    @property
    def model(self) -> PreTrainedModel:
        return self._module.model

    @property
    def aux(self) -> Mapping[str, torch.nn.Module]:
        return self._module.aux

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self._module.tokenizer

    @property
    def config(self) -> DictConfig:
        return self._module.cfg

    @property
    def device(self) -> torch.device:
        return self._module.device

    @property
    def training(self) -> bool:
        """True in the training stage (a hook that only shapes gradients skips the others)."""
        return self.stage == "train"

    @property
    def hooks(self) -> pluggy.HookRelay:
        """The run's hooks, for the API helpers that call them (``litplug.api.generate``, ``export``)."""
        return self._module.pm.hook

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The run's optimizer (e.g. to reset a projected parameter's momentum); None outside training."""
        trainer = self._module._trainer
        return trainer.optimizers[0] if trainer is not None and trainer.optimizers else None

    # -- the model's outputs ---------------------------------------------------------------------------
    @property
    def head(self) -> OutputHead:
        """The model's own output head (:class:`litplug.api.OutputHead`)."""
        return self._module.output_head

    @property
    def logits(self) -> torch.Tensor:
        """``[B, T, V]`` logits of this batch, exactly ``model(input_ids).logits``; computed on first use
        and shared by every plugin (and the core's loss) for the rest of the step."""
        if self._logits is None:
            if self.hidden is None:
                raise RuntimeError("StepContext.logits is available once the backbone has run (lm_loss, "
                                   "extra_losses); not in on_step_start or transform_batch")
            self._logits = self.head.logits(self.hidden)
        return self._logits

    @property
    def logits_computed(self) -> bool:
        return self._logits is not None

    # -- reporting -----------------------------------------------------------------------------------
    def log(self, name: str, value: float | torch.Tensor) -> None:
        """Log a scalar under ``name`` (it lands in MLflow at this step). A no-op outside a trainer, so a
        hook called from a unit test or an evaluation needs no guard."""
        module = self._module
        if module._trainer is None or self.stage == "final":
            return
        if hasattr(value, "detach"):
            value = value.detach()
        module.log(name, value, batch_size=1, add_dataloader_idx=False)

    def export(self, target: Any) -> Any:
        """Export the model now as the end of training would (``litplug.api.export``), to ``target``."""
        from litplug.export import export

        return export(self.model, self.tokenizer, self.hooks, self.config, target)

    def losses(self, batch: dict[str, torch.Tensor], stage: str = "validate") -> dict[str, torch.Tensor]:
        """The loss terms of another batch as the run computes them (``{"lm": ..., ..., "loss": ...}``)."""
        return self._module.compute_losses(batch, stage)


def context(pl_module: Any, stage: str = "train") -> StepContext:
    """A step context for a plugin's Lightning callback, from the ``pl_module`` Lightning passes it."""
    return StepContext(pl_module, stage)
