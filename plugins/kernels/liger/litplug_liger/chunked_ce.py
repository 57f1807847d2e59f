"""Linear cross-entropy that never materialises the [N, V] logits, for devices Liger does not run on.

PyTorch (>= 2.13) maintains one: ``F.linear_cross_entropy`` with ``LinearCrossEntropyOptions`` walks
the token rows in chunks and accumulates the loss and both gradients chunk by chunk, so the peak
holds one [chunk, V] block instead of [N, V] (plus its softmax and gradient copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn import LinearCrossEntropyOptions

IGNORE_INDEX = -100


def chunk_options(chunk_rows: int | None, hidden_size: int) -> LinearCrossEntropyOptions:
    """``chunk_rows`` rows per chunk; by default as many rows as the hidden size, so that a chunk's
    [rows, V] logits are as big as the [V, H] weight gradient the loss holds anyway (peak about twice
    that, whatever the number of tokens). PyTorch's own aspect-ratio rule (logits as big as the hidden
    states) gives chunks of a few rows at small H and large V, which on CPU is several times slower
    than the plain loss without saving more memory (benchmarks/kernels_cpu.py)."""
    return LinearCrossEntropyOptions(batch_chunk_size=chunk_rows or hidden_size, chunking_method=None)


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                 labels: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T + bias`` against ``labels`` (-100 = ignored).

    :param hidden: [N, H] rows; :param weight: [V, H]; :param labels: [N].
    Under autocast the operands are cast to the autocast dtype first, as ``F.linear`` would be.
    """
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = bias.to(dtype) if bias is not None else None
    with torch.autocast(device, enabled=False):
        loss = F.linear_cross_entropy(hidden, weight, labels, linear_bias=bias, ignore_index=IGNORE_INDEX,
                                      options=chunk_options(chunk_rows, hidden.shape[-1]))
    return loss.float()
