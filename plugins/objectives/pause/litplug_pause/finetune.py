"""Pause-finetuning: ``[prompt, M x pause, answer]`` with the loss on the answer tokens only.

The row's prompt ends where its first answer target starts (``answer_mask``): in the shifted layout
position ``p`` holds the last prompt token and predicts the first answer token. The pauses go in at
input positions ``p+1 .. p+M``, so the last pause (position ``p+M``) predicts the first answer token,
as at inference. The batch grows by M columns instead of truncating, so no answer token is lost.
Rows without a prompt (plain text) are left as they are.
"""

from __future__ import annotations

import torch

IGNORE = -100


def _shifted(values: torch.Tensor, source: torch.Tensor, inserted: torch.Tensor, insert_value: int,
             fill_value: int) -> torch.Tensor:
    """``values`` read at ``source`` (``fill_value`` past the end), ``insert_value`` where ``inserted``."""
    width = values.shape[1]
    out = values.gather(1, source.clamp(max=width - 1))
    out = torch.where(source < width, out, torch.full_like(out, fill_value))
    return torch.where(inserted, torch.full_like(out, insert_value), out)


def append_pauses(batch: dict[str, torch.Tensor], pause_id: int, pad_id: int, num_pauses: int) -> None:
    """Rewrite ``batch`` in place: answer-only loss, and ``num_pauses`` pauses after every prompt."""
    answer = batch["answer_mask"].bool()
    labels = batch["labels"].masked_fill(~answer, IGNORE)
    batch["labels"] = labels
    if num_pauses == 0:
        return
    input_ids = batch["input_ids"]
    rows, width = input_ids.shape
    device = input_ids.device
    first_answer = answer.long().argmax(dim=1, keepdim=True)  # position predicting the first answer token
    has_prompt = answer.any(dim=1, keepdim=True) & (first_answer > 0)
    shift = num_pauses * has_prompt.long()
    position = torch.arange(width + num_pauses, device=device).expand(rows, -1)

    # inputs: prompt tokens 0..p, then pauses at p+1..p+M, then the rest moved right by M
    input_start = first_answer + 1
    input_pause = (position >= input_start) & (position < input_start + shift)
    input_source = torch.where(position >= input_start + shift, position - shift, position)
    # targets: the prompt's, then no loss where the target is a pause (p..p+M-1), then the answer's
    label_pause = (position >= first_answer) & (position < first_answer + shift)
    label_source = torch.where(position >= first_answer + shift, position - shift, position)

    batch["input_ids"] = _shifted(input_ids, input_source, input_pause, pause_id, pad_id)
    batch["attention_mask"] = _shifted(batch["attention_mask"], input_source, input_pause, 1, 0)
    batch["labels"] = _shifted(labels, label_source, label_pause, IGNORE, IGNORE)
    batch["answer_mask"] = _shifted(answer, label_source, label_pause, False, False)
