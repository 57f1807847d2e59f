"""Task masks as bits: ``numpy.packbits`` of ``tau != 0``, about numel/8 bytes per task."""

from __future__ import annotations

import numpy as np
import torch


def pack_mask(mask: torch.Tensor) -> np.ndarray:
    """A bool tensor (any shape) as packed uint8 bits, big-endian bit order, flattened row-major."""
    return np.packbits(mask.detach().cpu().reshape(-1).numpy().astype(bool))


def unpack_mask(packed: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of :func:`pack_mask`."""
    numel = int(np.prod(shape, dtype=np.int64))
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), count=numel)
    return torch.from_numpy(bits.astype(bool)).reshape(shape)
