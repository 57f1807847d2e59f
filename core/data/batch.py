"""Turn stored rows into the batch every hook sees: shifted labels, no loss on padding."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import default_collate


def to_model_batch(rows: dict[str, torch.Tensor], loss_on: str = "all") -> dict[str, torch.Tensor]:
    """``input_ids``/``labels``/``attention_mask``/``answer_mask``, all [B, T].

    ``labels[:, t]`` is the target of position t (the next token), -100 where there is none. The
    answer mask marks targets inside a prompt/answer example's answer (all targets for plain text).
    Training batches also carry ``source`` [B], the index of the mixture source of each row.
    """
    tokens = rows["tokens"].long()
    input_ids, targets = tokens[:, :-1], tokens[:, 1:]
    positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
    length = rows["length"].long().unsqueeze(1)
    n_prompt = rows["n_prompt"].long().unsqueeze(1)
    real_target = positions < length - 1
    answer_mask = real_target & (positions >= n_prompt - 1)
    keep = answer_mask if loss_on == "answer" else real_target
    labels = targets.masked_fill(~keep, -100)
    batch = {
        "input_ids": input_ids.contiguous(),
        "labels": labels.contiguous(),
        "attention_mask": (positions < length).long(),
        "answer_mask": answer_mask,
    }
    if "source" in rows:  # training batches: which mixture source each row came from
        batch["source"] = rows["source"].long()
    return batch


def collate(samples: list[dict[str, Any]], loss_on: str = "all") -> dict[str, torch.Tensor]:
    return to_model_batch(default_collate(samples), loss_on)
