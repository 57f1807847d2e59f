"""The core's own behaviour, registered as the plugin ``core`` like any other (it runs last)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litplug import hookimpl

if TYPE_CHECKING:  # torch is imported when a loss is computed: `litplug config` stays fast
    import torch
    from omegaconf import DictConfig

    from litplug.context import StepContext
    from litplug.head import OutputHead


class CorePlugin:
    """Next-token cross-entropy of the model's own logits, and AdamW: the fallbacks of the exclusive hooks."""

    @hookimpl(trylast=True)
    def lm_loss(self, hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor,
                ctx: StepContext | None = None) -> torch.Tensor:
        """Computed as HF's ``ForCausalLMLoss`` does (logits upcast to float32, mean over targets that are
        not -100), so it equals ``model(input_ids, labels=...).loss``. The logits are the context's, so a
        plugin reading ``ctx.logits`` later in the step reuses them."""
        import torch.nn.functional as F

        logits = (ctx.logits if ctx is not None and ctx.hidden is hidden else head.logits(hidden)).float()
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)

    @hookimpl(trylast=True)
    def configure_optimizer(self, param_groups: list[dict[str, Any]], config: DictConfig) -> torch.optim.Optimizer:
        import torch

        o = config.optim
        return torch.optim.AdamW(param_groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)
