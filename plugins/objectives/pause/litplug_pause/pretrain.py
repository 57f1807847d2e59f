"""Pause-pretraining: pauses at uniformly random positions of each row, truncated back to its length.

Works on the shifted batch layout (``labels[:, t]`` is the target of position t). The row's tokens are
rebuilt as ``input_ids`` plus the last target, pause slots are drawn among positions 1..T of the new
row, and the original tokens fill the other slots in order, so removing the pauses leaves a prefix of
the original row. A target that is a pause is never a loss term; a real token keeps its loss flag
whatever precedes it, so pause inputs still predict the next real token.
"""

from __future__ import annotations

import torch

IGNORE = -100


def pause_slots(batch_size: int, width: int, fraction: float, sampling: str,
                generator: torch.Generator) -> torch.Tensor:
    """[B, width+1] bool: which slots of the new row are pauses (never slot 0, the row's first token).

    ``fixed`` picks exactly ``round(fraction * width)`` slots a row uniformly without replacement (the
    paper's "M_pt pauses per sequence"); ``bernoulli`` makes each slot a pause independently.
    """
    slots = torch.zeros(batch_size, width + 1, dtype=torch.bool)
    if sampling == "fixed":
        count = round(fraction * width)
        if count:
            scores = torch.rand(batch_size, width, generator=generator)
            slots.scatter_(1, scores.topk(count, dim=1).indices + 1, True)
    else:
        slots[:, 1:] = torch.rand(batch_size, width, generator=generator) < fraction
    return slots


def insert_pauses(batch: dict[str, torch.Tensor], pause_id: int, pad_id: int, slots: torch.Tensor) -> None:
    """Rewrite ``batch`` in place with pauses at ``slots`` (from :func:`pause_slots`), same width.

    A pause slot is kept only while real tokens remain to follow it (pauses are inserted between the
    tokens of a row, not into its padding).
    """
    input_ids, labels = batch["input_ids"], batch["labels"]
    width = input_ids.shape[1]
    device = input_ids.device
    last_is_real = labels[:, -1] != IGNORE
    last = torch.where(last_is_real, labels[:, -1], torch.full_like(labels[:, -1], pad_id))
    tokens = torch.cat([input_ids, last[:, None]], dim=1)  # [B, T+1], the row before shifting
    first = torch.zeros_like(last_is_real)[:, None]
    is_target = torch.cat([first, labels != IGNORE], dim=1)  # token i is a loss term (as target of i-1)
    answer = batch.get("answer_mask", labels != IGNORE).bool()
    in_answer = torch.cat([first, answer], dim=1)
    real = torch.cat([batch["attention_mask"].bool(), last_is_real[:, None]], dim=1)
    length = real.sum(dim=1, keepdim=True)

    slots = slots.to(device)
    position = torch.arange(width + 1, device=device)
    pauses_upto = slots.long().cumsum(dim=1)
    source = position - pauses_upto  # for a token slot: index of the original token placed there
    is_pause = slots & (position - (pauses_upto - slots.long()) < length)
    is_token = ~slots & (source < length)
    source = source.clamp(0, width)

    new_tokens = torch.where(is_token, tokens.gather(1, source), torch.full_like(tokens, pad_id))
    new_tokens = torch.where(is_pause, torch.full_like(tokens, pause_id), new_tokens)
    new_target = is_token & is_target.gather(1, source)
    new_answer = is_token & in_answer.gather(1, source)

    batch["input_ids"] = new_tokens[:, :-1].contiguous()
    batch["labels"] = torch.where(new_target[:, 1:], new_tokens[:, 1:], IGNORE).contiguous()
    batch["attention_mask"] = (is_pause | is_token)[:, :-1].to(batch["attention_mask"].dtype)
    batch["answer_mask"] = new_answer[:, 1:].contiguous()
