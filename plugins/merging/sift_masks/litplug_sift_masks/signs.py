"""The global sign vector v in {-1, +1}: one public seed, drawn per parameter name.

Each tensor's signs come from a PCG64 stream seeded by sha256(seed, name), so v does not depend on
the order in which a model registers its parameters, on the device, or on which other tensors
exist; and the store can regenerate v for any tensor without keeping it on disk.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np
import torch


def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"litplug-sift-signs\x1f{seed}\x1f{name}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


def sign_positive(name: str, shape: Iterable[int], seed: int) -> torch.Tensor:
    """Bool tensor of ``shape``: True where v = +1, False where v = -1 (each with probability 1/2)."""
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    raw = np.random.Generator(np.random.PCG64(_tensor_seed(seed, name))).bytes((numel + 7) // 8)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=numel)
    return torch.from_numpy(bits.astype(bool)).reshape(shape)


def sign_vector(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """v as int8 tensors of -1/+1, for the named shapes (sorted by name, the canonical order)."""
    return {name: sign_positive(name, shapes[name], seed).to(torch.int8) * 2 - 1 for name in sorted(shapes)}
