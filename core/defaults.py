"""The core's own behaviour, registered as the plugin ``core`` like any other (it runs last)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litplug import hookimpl

if TYPE_CHECKING:  # torch is imported when a loss is computed: `litplug config` stays fast
    import torch


class CorePlugin:
    """Plain next-token cross-entropy through the LM head: the fallback for ``lm_loss``."""

    @hookimpl(trylast=True)
    def lm_loss(self, hidden: torch.Tensor, lm_head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        logits = lm_head(hidden)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
