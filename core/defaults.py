"""The core's own behaviour, registered as the plugin ``core`` like any other (it runs last)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litplug import hookimpl

if TYPE_CHECKING:  # torch is imported when a loss is computed: `litplug config` stays fast
    import torch

    from litplug.head import OutputHead


class CorePlugin:
    """Next-token cross-entropy of the model's own logits: the fallback for ``lm_loss``.

    Computed as HF's ``ForCausalLMLoss`` does (logits upcast to float32, mean over targets that are
    not -100), so it equals ``model(input_ids, labels=...).loss``."""

    @hookimpl(trylast=True)
    def lm_loss(self, hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        logits = head.logits(hidden).float()
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
