"""Merging baselines on the same task vectors: task arithmetic (the naive mean) and TIES.

Both stream one tensor name at a time across the N finetuned models, so memory holds N copies of
one tensor, not N models. TIES (arXiv 2306.01708) first needs each task's global top-k magnitude
threshold, found in a pass that holds one task vector at a time.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import torch

from litplug_sift_masks.errors import StoreError
from litplug_sift_masks.hfdir import FLOAT_DTYPES, TensorSource


def _open_all(stack: ExitStack, base_dir: Path, model_dirs: list[Path]) -> tuple[TensorSource, list[TensorSource]]:
    if not model_dirs:
        raise StoreError("A merge needs at least one finetuned model.")
    base = stack.enter_context(TensorSource(base_dir))
    models = [stack.enter_context(TensorSource(d)) for d in model_dirs]
    for directory, model in zip(model_dirs, models):
        if model.names != base.names:
            raise StoreError(f"'{directory}' has other tensors than the base model '{base_dir}'.")
    return base, models


def _float_names(base: TensorSource) -> list[str]:
    return [n for n in base.names if base.dtype(n) in FLOAT_DTYPES]


def task_arithmetic(base_dir: Path, model_dirs: list[Path], scale: float = 1.0) -> dict[str, torch.Tensor]:
    """theta_0 + scale * mean_t(theta_t - theta_0), in float64 then cast back."""
    with ExitStack() as stack:
        base, models = _open_all(stack, base_dir, model_dirs)
        out = {n: base.get(n) for n in base.names}
        for name in _float_names(base):
            theta0 = out[name].to(torch.float64)
            total = torch.zeros_like(theta0)
            for model in models:
                total += model.get(name).to(torch.float64) - theta0
            out[name] = (theta0 + scale * total / len(models)).to(out[name].dtype)
        return out


def _ties_thresholds(base: TensorSource, models: list[TensorSource], names: list[str], density: float) -> list[float]:
    """Per task, the magnitude of its k-th largest entry (k = density * numel, over all tensors)."""
    thresholds = []
    for model in models:
        flat = torch.cat([(model.get(n).double() - base.get(n).double()).abs().reshape(-1) for n in names])
        k = max(1, round(density * flat.numel()))
        thresholds.append(float(torch.topk(flat, k, sorted=False).values.min()) if k < flat.numel() else 0.0)
    return thresholds


def ties(base_dir: Path, model_dirs: list[Path], density: float = 0.2, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """TIES: trim each task vector to its top ``density`` magnitudes, elect a sign per entry (the sign
    of the trimmed sum), average only the entries that agree with it, add ``scale`` times that."""
    if not 0 < density <= 1:
        raise StoreError(f"TIES density must be in (0, 1] (got {density}).")
    with ExitStack() as stack:
        base, models = _open_all(stack, base_dir, model_dirs)
        names = _float_names(base)
        thresholds = _ties_thresholds(base, models, names, density)
        out = {n: base.get(n) for n in base.names}
        for name in names:
            theta0 = out[name].to(torch.float64)
            taus = torch.stack([m.get(name).to(torch.float64) - theta0 for m in models])
            keep = taus.abs() >= torch.tensor(thresholds, dtype=torch.float64).view(-1, *[1] * theta0.dim())
            trimmed = taus * keep
            elected = torch.sign(trimmed.sum(0))
            agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
            merged = (trimmed * agree).sum(0) / agree.sum(0).clamp(min=1)
            out[name] = (theta0 + scale * merged).to(out[name].dtype)
        return out
