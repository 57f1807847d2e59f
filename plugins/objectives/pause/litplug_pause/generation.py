"""Inference with pauses: M_inf pauses after each prompt; the pause is never emitted.

The core decodes greedily from the end of the (left-padded) prompt, i.e. from the output at the last
pause, so the outputs at earlier positions are never read, as in the paper.
"""

from __future__ import annotations

from transformers import LogitsProcessor, SuppressTokensLogitsProcessor


def append_to_prompts(prompts: list[list[int]], pause_id: int, num_pauses: int) -> None:
    """Append ``num_pauses`` pause ids to every tokenised prompt, in place."""
    for ids in prompts:
        ids.extend([pause_id] * num_pauses)


def never_emit(pause_id: int) -> LogitsProcessor:
    """A logits processor that sets the pause logit to -inf at every decoding step."""
    return SuppressTokensLogitsProcessor([pause_id])
