"""FSP-BCE targets: at position t, the set of distinct tokens in x[t+2 .. t+tau].

Built from the shifted labels (``labels[:, t]`` is x[t+1]), so the window of position t is
``labels[:, t+1 : t+tau]``. A label of -100 (padding, or a target the data marks as untrained, such
as a pause token) is never part of a bag. The result is a [B, T, tau-1] tensor of token ids with -1
for "no token", never a [B, T, V] multi-hot.
"""

from __future__ import annotations

import torch

IGNORE = -100
NO_TOKEN = -1


def future_windows(labels: torch.Tensor, tau: int) -> torch.Tensor:
    """[B, T, tau-1]: ``out[b, t, k] = labels[b, t+1+k]`` (= x[t+2+k]), -100 past the end."""
    batch, _ = labels.shape
    pad = labels.new_full((batch, tau), IGNORE)
    return torch.cat([labels[:, 1:], pad], dim=1).unfold(1, tau - 1, 1)[:, : labels.shape[1]]


BOUNDARIES = ("mask", "truncate")


def future_bags(labels: torch.Tensor, tau: int, edge: str = "truncate", eos_id: int | None = None,
                boundary: str = "mask") -> tuple[torch.Tensor, torch.Tensor]:
    """The bag of each position and which positions get the auxiliary loss.

    :param edge: ``truncate`` keeps a window that runs past the last target (or an EOS) with the
        tokens it has; ``mask`` drops such positions.
    :param eos_id: the document boundary in packed text. A window *crosses* it when it holds tokens
        after an EOS: an EOS inside the window, or the position's own target is the EOS (then the whole
        window is the next document). ``None``: windows ignore documents.
    :param boundary: what a crossing window does: ``mask`` drops the position (METHODS.md 2(b)7);
        ``truncate`` keeps the tokens up to and including the EOS.
    :return: ``bags`` [B, T, tau-1] with distinct ids per position and -1 for none, and ``valid``
        [B, T]: the position has an NTP target and a non-empty (``mask``: complete) window.
    """
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    window = future_windows(labels, tau)
    present = window != IGNORE
    complete = present.all(dim=-1)
    crossing = torch.zeros_like(complete)
    if eos_id is not None:
        is_eos = (window == eos_id).long()
        after_eos = (is_eos.cumsum(dim=-1) - is_eos) > 0
        after_eos |= (labels == eos_id).unsqueeze(-1)  # the target is the EOS: the window is the next document
        crossing = (after_eos & present).any(dim=-1)
        complete &= ~after_eos.any(dim=-1)
        present &= ~after_eos
    ids = torch.where(present, window, torch.full_like(window, NO_TOKEN))
    ids, _ = ids.sort(dim=-1)
    repeated = torch.zeros_like(present)
    repeated[..., 1:] = ids[..., 1:] == ids[..., :-1]
    bags = ids.masked_fill(repeated, NO_TOKEN)
    valid = (labels != IGNORE) & (bags != NO_TOKEN).any(dim=-1)
    if boundary == "mask":
        valid &= ~crossing
    if edge == "mask":
        valid &= complete
    return bags, valid
