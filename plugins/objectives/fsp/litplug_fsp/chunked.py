"""Losses over the vocabulary through the shared unembedding, computed a chunk of positions at a time.

A head's logits would be [positions, V]; at a realistic vocabulary that doubles the step's peak
memory. :func:`chunked_linear_loss` instead computes, per chunk, the logits, the loss and the
loss's gradient with respect to the logits, folds that gradient into the gradients of the hidden
states and of the unembedding right away, and drops the chunk. Peak extra memory is
O(chunk x V) plus one gradient of the unembedding; backward only scales the stored gradients.

A *kernel* turns one chunk of (at least float32) logits into ``(sum of losses, d loss / d logits)``:
:class:`BagBCE` (FSP-BCE) and :class:`CrossEntropy` (MTP heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F


class Kernel(Protocol):
    def __call__(self, logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class BagBCE:
    """Binary cross-entropy against a multi-hot bag, without the multi-hot:

    -sum_v w_v [a_v log s(z_v) + (1 - a_v) log(1 - s(z_v))] = sum_v w_v softplus(z_v) - sum_{v in bag} w_v z_v.

    ``bags`` [N, K] holds distinct token ids per row, -1 for none; ``weights`` [V] or None (all 1).
    """

    bags: torch.Tensor
    weights: torch.Tensor | None = None

    def __call__(self, logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        bags = self.bags[rows]
        in_bag = bags >= 0
        ids = bags.clamp(min=0)
        bag_weight = in_bag.to(logits.dtype)
        if self.weights is not None:
            bag_weight = bag_weight * self.weights.to(logits.dtype)[ids]
            loss = (F.softplus(logits) * self.weights).sum()
            grad = torch.sigmoid(logits).mul_(self.weights)
        else:
            loss = F.softplus(logits).sum()
            grad = torch.sigmoid(logits)
        loss = loss - (logits.gather(1, ids) * bag_weight).sum()
        grad.scatter_add_(1, ids, -bag_weight)
        return loss, grad


@dataclass
class CrossEntropy:
    """Softmax cross-entropy against one target id per row (every row has a target)."""

    targets: torch.Tensor

    def __call__(self, logits: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        targets = self.targets[rows].unsqueeze(1)
        log_z = torch.logsumexp(logits, dim=1, keepdim=True)
        loss = (log_z - logits.gather(1, targets)).sum()
        grad = (logits - log_z).exp_()
        grad.scatter_add_(1, targets, -torch.ones_like(targets, dtype=grad.dtype))
        return loss, grad


class _ChunkedLinearLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel: Kernel,
                scale: float, chunk_rows: int, logit_scale: float, softcap: float | None) -> torch.Tensor:
        acc = torch.promote_types(weight.dtype, torch.float32)  # half-precision logits are reduced in fp32
        total = torch.zeros((), dtype=acc, device=hidden.device)
        grad_hidden = torch.zeros_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=acc) if ctx.needs_input_grad[1] else None
        grad_bias = torch.zeros_like(bias, dtype=acc) if bias is not None and ctx.needs_input_grad[2] else None
        for start in range(0, hidden.shape[0], chunk_rows):
            rows = slice(start, start + chunk_rows)
            h = hidden[rows]
            logits = F.linear(h, weight, bias).to(acc)
            if logit_scale != 1.0:
                logits = logits.mul_(logit_scale)
            capped = None
            if softcap is not None:  # z = c tanh(s raw / c): dz/draw = s (1 - tanh^2)
                capped = torch.tanh(logits / softcap)
                logits = capped * softcap
            loss, grad = kernel(logits, rows)
            del logits
            total += loss
            if capped is not None:
                grad = grad.mul_(1.0 - capped.square_())
            grad = grad.mul_(scale * logit_scale)
            grad_hidden[rows] = (grad.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight.addmm_(grad.t(), h.to(acc))
            if grad_bias is not None:
                grad_bias += grad.sum(0)
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        return total * scale

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return (
            grad_hidden * grad_out.to(grad_hidden.dtype),
            None if grad_weight is None else (grad_weight * grad_out).to(ctx.weight_dtype),
            None if grad_bias is None else (grad_bias * grad_out).to(ctx.weight_dtype),
            None, None, None, None, None,
        )


def chunked_linear_loss(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kernel: Kernel,
                        scale: float = 1.0, chunk_elements: int = 8_388_608, logit_scale: float = 1.0,
                        softcap: float | None = None) -> torch.Tensor:
    """``scale * sum over rows of kernel(z)`` with ``z = softcap(logit_scale * (hidden @ weight.T + bias))``
    (the model's own output head, :class:`litplug.api.OutputHead`), with exact gradients for
    ``hidden``, ``weight`` and ``bias``, holding at most ``chunk_elements`` logits at a time.

    :param hidden: [N, H] rows (positions) that have a target.
    :param weight: [V, H] the unembedding; ``bias`` [V] or None.
    :param softcap: ``c`` in ``c * tanh(z / c)``, or None.
    """
    chunk_rows = max(1, chunk_elements // weight.shape[0])
    return _ChunkedLinearLoss.apply(hidden, weight, bias, kernel, scale, chunk_rows, logit_scale, softcap)
