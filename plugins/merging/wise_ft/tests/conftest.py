"""Fixtures: two saved checkpoints of one tiny model (an "early" and a "late" one)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch


def perturbed(model: Any, scale: float = 0.05, seed: int = 1) -> Any:
    """A copy of ``model`` with every float parameter moved by Gaussian noise (a "later" checkpoint)."""
    other = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in other.parameters():
            param.add_(scale * torch.randn(param.shape, generator=generator))
    return other


@pytest.fixture
def model_pair(tmp_path: Path, tiny_model: Any, tiny_tokenizer: Any) -> tuple[Path, Path, Any, Any]:
    """(early_dir, late_dir, early_model, late_model), both saved with the tokenizer as plain HF dirs."""
    late_model = perturbed(tiny_model)
    early_dir, late_dir = tmp_path / "early", tmp_path / "late"
    for model, folder in ((tiny_model, early_dir), (late_model, late_dir)):
        model.save_pretrained(folder, safe_serialization=True)
        tiny_tokenizer.save_pretrained(folder)
    return early_dir, late_dir, tiny_model, late_model
