"""Which layers are candidates, and each one's weight as an [out, in] matrix.

Candidates are the linear layers of the HF model (``nn.Linear`` and GPT-2's ``Conv1D``, whose weight is
stored transposed) whose module name matches one of the glob patterns. The output head is never a
candidate: it is usually tied to the input embedding, and its outputs (logits) are not quantised
activations.
"""

from __future__ import annotations

import fnmatch

import torch
from transformers import PreTrainedModel
from transformers.pytorch_utils import Conv1D

from litplug.api import ConfigError

LINEAR_TYPES = (torch.nn.Linear, Conv1D)


def linear_layers(model: PreTrainedModel) -> dict[str, torch.nn.Module]:
    """Every linear layer of ``model`` except its output head, by module name."""
    head = model.get_output_embeddings()
    return {name: m for name, m in model.named_modules() if isinstance(m, LINEAR_TYPES) and m is not head}


def match_layers(model: PreTrainedModel, patterns: list[str], key: str = "plugins.s2d.layers") -> list[str]:
    """Names of the linear layers matching any pattern; a pattern that matches none is a ConfigError."""
    names = list(linear_layers(model))
    chosen: set[str] = set()
    for pattern in patterns:
        hits = fnmatch.filter(names, pattern)
        if not hits:
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ConfigError(f"{key}: pattern '{pattern}' matches no linear layer of the model "
                              f"({len(names)} linear layers, e.g. {shown}). Fix the pattern or remove it.")
        chosen.update(hits)
    return [n for n in names if n in chosen]


def out_in_weight(layer: torch.nn.Module) -> torch.Tensor:
    """The layer's weight as [out, in] (y = x W^T); a view, so gradients reach the parameter."""
    return layer.weight.t() if isinstance(layer, Conv1D) else layer.weight
