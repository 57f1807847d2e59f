"""The sign vector and the bit-packed masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from litplug_sift_masks.masks import pack_mask, unpack_mask
from litplug_sift_masks.signs import sign_positive, sign_vector


class _Forward(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.alpha = torch.nn.Linear(7, 5)
        self.beta = torch.nn.Embedding(11, 3)


class _Reversed(torch.nn.Module):  # the same parameter names, registered in the other order
    def __init__(self) -> None:
        super().__init__()
        self.beta = torch.nn.Embedding(11, 3)
        self.alpha = torch.nn.Linear(7, 5)


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in module.named_parameters()}


def test_sign_vector_is_plus_minus_one_and_balanced() -> None:
    v = sign_vector({"w": (200, 300)}, seed=3)["w"]
    assert set(v.unique().tolist()) == {-1, 1}
    assert abs(float((v > 0).float().mean()) - 0.5) < 0.01


def test_sign_vector_ignores_registration_order() -> None:
    a, b = _Forward(), _Reversed()
    assert [n for n, _ in a.named_parameters()] != [n for n, _ in b.named_parameters()]
    va, vb = sign_vector(_shapes(a), 0), sign_vector(_shapes(b), 0)
    assert list(va) == list(vb) == sorted(va)
    assert all(torch.equal(va[n], vb[n]) for n in va)


def test_sign_vector_depends_on_seed_and_name_only() -> None:
    assert torch.equal(sign_positive("w", (64,), 1), sign_positive("w", (64,), 1))
    assert not torch.equal(sign_positive("w", (64,), 1), sign_positive("w", (64,), 2))
    assert not torch.equal(sign_positive("w", (64,), 1), sign_positive("u", (64,), 1))


@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (13, 5), (3, 4, 9)])
def test_mask_pack_round_trip_at_one_bit_per_entry(shape: tuple[int, ...]) -> None:
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.3
    packed = pack_mask(mask)
    assert packed.dtype == np.uint8
    assert packed.size == -(-mask.numel() // 8)
    assert torch.equal(unpack_mask(packed, shape), mask)
