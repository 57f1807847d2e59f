"""The core's own behaviour, registered as the plugin ``core`` like any other (it runs last)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from litplug import hookimpl


class CorePlugin:
    """Plain next-token cross-entropy through the LM head: the fallback for ``lm_loss``."""

    @hookimpl(trylast=True)
    def lm_loss(self, hidden: torch.Tensor, lm_head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor:
        logits = lm_head(hidden)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
