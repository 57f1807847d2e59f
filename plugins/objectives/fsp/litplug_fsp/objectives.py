"""The three auxiliary losses, each from the trunk's hidden states of one backbone pass.

- :func:`fsp_bce_loss`: a head predicts the bag of tokens in x[t+2 .. t+tau] (FSP-BCE).
- :func:`fsp_revlm_loss`: a head regresses a frozen reverse LM's summary of x[t+2 ..] (FSP-RevLM).
- :func:`mtp_loss`: head k predicts x[t+k+1], k = 1..n (multi-token prediction, the baseline).

Every loss averages over the positions it uses; ``keep`` optionally thins those positions out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from litplug.api import OutputHead
from litplug_fsp.chunked import BagBCE, CrossEntropy, chunked_linear_loss
from litplug_fsp.reverse import IGNORE, future_summary_targets, reverse_batch, sequence_lengths
from litplug_fsp.windows import future_bags

PositionFilter = Callable[[torch.Tensor], torch.Tensor]


def _no_positions(states: torch.Tensor) -> torch.Tensor:
    """A zero that still reaches the head, so every aux parameter gets a (zero) gradient."""
    return states.sum() * 0.0


def fsp_bce_loss(head: nn.Module, out: OutputHead, hidden: torch.Tensor, labels: torch.Tensor, *, tau: int,
                 edge: str = "truncate", eos_id: int | None = None, boundary: str = "mask",
                 token_weights: torch.Tensor | None = None, normalize: str = "mean", chunk_elements: int = 8_388_608,
                 keep: PositionFilter | None = None) -> torch.Tensor:
    """Mean over positions of sum_v w_v softplus(z_v) - sum_{v in bag} w_v z_v (divided by V when
    ``normalize == "mean"``), with z = out.logits(head(hidden)): the model's own output head, its logit
    scaling and soft-capping included."""
    bags, valid = future_bags(labels, tau, edge, eos_id, boundary)
    if keep is not None:
        valid = keep(valid)
    states = head(hidden)
    count = int(valid.sum())
    if count == 0:
        return _no_positions(states)
    vocab = out.weight.shape[0]
    scale = 1.0 / (count * (vocab if normalize == "mean" else 1))
    return chunked_linear_loss(states[valid], out.weight, out.bias, BagBCE(bags[valid], token_weights),
                               scale, chunk_elements, logit_scale=out.scale, softcap=out.softcap)


def mtp_loss(heads: nn.ModuleList, out: OutputHead, hidden: torch.Tensor, labels: torch.Tensor, *,
             chunk_elements: int = 8_388_608, keep: PositionFilter | None = None) -> torch.Tensor:
    """Sum over heads k = 1..n of the mean cross-entropy of x[t+k+1] (= ``labels[:, t+k]``), at
    positions whose NTP target and head-k target both exist. Heads run one after another, and
    each head's logits exist only a chunk at a time."""
    total = hidden.new_zeros(())
    for k, head in enumerate(heads, start=1):
        targets = torch.cat([labels[:, k:], labels.new_full((labels.shape[0], k), IGNORE)], dim=1)
        valid = (labels != IGNORE) & (targets != IGNORE)
        if keep is not None:
            valid = keep(valid)
        states = head(hidden)
        count = int(valid.sum())
        if count == 0:
            total = total + _no_positions(states)
            continue
        total = total + chunked_linear_loss(states[valid], out.weight, out.bias, CrossEntropy(targets[valid]),
                                            1.0 / count, chunk_elements, logit_scale=out.scale, softcap=out.softcap)
    return total


def fsp_revlm_loss(head: nn.Module, teacher: nn.Module, batch: dict[str, torch.Tensor], hidden: torch.Tensor, *,
                   layer: int = -1, normalize: str = "mean", normalize_target: bool = False,
                   keep: PositionFilter | None = None) -> torch.Tensor:
    """Mean over positions of ||head(hidden)_t - teacher summary of x[t+2 ..]||^2 (divided by the
    teacher's width when ``normalize == "mean"``). The teacher runs without gradient."""
    with torch.no_grad():
        reversed_ids = reverse_batch(batch)["input_ids"]
        out = teacher.base_model(input_ids=reversed_ids, output_hidden_states=layer != -1)
        teacher_hidden = out.last_hidden_state if layer == -1 else out.hidden_states[layer]
        targets, valid = future_summary_targets(teacher_hidden, sequence_lengths(batch), batch["labels"])
        if normalize_target:
            targets = F.layer_norm(targets, targets.shape[-1:])
    if keep is not None:
        valid = keep(valid)
    states = head(hidden)
    if not valid.any():
        return _no_positions(states)
    squared = (states[valid] - targets[valid].to(states.dtype)).pow(2).sum(dim=-1)
    if normalize == "mean":
        squared = squared / targets.shape[-1]
    return squared.mean()


def sample_positions(count: int, generator: torch.Generator) -> PositionFilter:
    """Keep at most ``count`` of each row's valid positions, uniformly at random (``generator`` on CPU)."""

    def keep(valid: torch.Tensor) -> torch.Tensor:
        scores = torch.rand(valid.shape, generator=generator).to(valid.device).masked_fill(~valid, 2.0)
        rank = scores.argsort(dim=1).argsort(dim=1)
        return valid & (rank < count)

    return keep
