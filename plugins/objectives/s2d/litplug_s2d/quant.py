"""Simulated (fake) WxAy quantisation of a model's linear layers, with torch's own primitives.

Weights: symmetric, per output channel (``PerChannelMinMaxObserver`` for the scales,
``torch.fake_quantize_per_channel_affine`` for the rounding). Activations (each linear layer's input):
asymmetric, per token, computed on the fly for every forward (dynamic), again with the observer and
``fake_quantize_per_channel_affine`` along the token axis. Embeddings, the output head, norms and the
attention matmuls stay in full precision, as in the usual W4A4 linear-layer setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.ao.quantization.observer import PerChannelMinMaxObserver
from transformers.pytorch_utils import Conv1D

from litplug.api import ConfigError


@dataclass(frozen=True)
class QuantSpec:
    weight_bits: int
    act_bits: int

    @property
    def name(self) -> str:
        return f"w{self.weight_bits}a{self.act_bits}"


def parse_specs(text: str) -> list[QuantSpec]:
    """``"w4a4,w8a8"`` -> specs; bits must be in 2..8 (the observers' integer range)."""
    specs = []
    for item in [t.strip().lower() for t in text.split(",") if t.strip()]:
        match = re.fullmatch(r"w(\d+)a(\d+)", item)
        if not match or not all(2 <= int(b) <= 8 for b in match.groups()):
            raise ConfigError(f"--bits: '{item}' is not a setting like w4a4 or w8a8 (weight and activation bits, "
                              "each from 2 to 8).")
        specs.append(QuantSpec(int(match[1]), int(match[2])))
    if not specs:
        raise ConfigError("--bits: give at least one setting, e.g. --bits w4a4,w8a8.")
    return specs


def fake_quant_weight(weight: torch.Tensor, axis: int, bits: int) -> torch.Tensor:
    """Symmetric per-channel fake quantisation along ``axis`` (the output channels)."""
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    observer = PerChannelMinMaxObserver(ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
                                        quant_min=qmin, quant_max=qmax).to(weight.device)
    w = weight.detach().float()
    observer(w)
    scale, zero_point = observer.calculate_qparams()
    out = torch.fake_quantize_per_channel_affine(w, scale.float(), zero_point.int(), axis, qmin, qmax)
    return out.to(weight.dtype)


def fake_quant_tokens(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Asymmetric per-token fake quantisation of activations [..., features]."""
    qmax = 2**bits - 1
    rows = x.detach().float().reshape(-1, x.shape[-1])
    observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.quint8, qscheme=torch.per_channel_affine,
                                        quant_min=0, quant_max=qmax).to(x.device)
    observer(rows)
    scale, zero_point = observer.calculate_qparams()
    out = torch.fake_quantize_per_channel_affine(rows, scale.float(), zero_point.int(), 0, 0, qmax)
    return out.reshape(x.shape).to(x.dtype)


def _weight_axis(layer: torch.nn.Module) -> int:
    return 1 if isinstance(layer, Conv1D) else 0  # Conv1D stores [in, out]


@contextmanager
def simulated(layers: dict[str, torch.nn.Module], spec: QuantSpec) -> Iterator[None]:
    """Inside the block, ``layers`` compute with fake-quantised weights and inputs; restored on exit."""
    originals: dict[str, torch.Tensor] = {}
    handles = []
    try:
        with torch.no_grad():
            for name, layer in layers.items():
                originals[name] = layer.weight.detach().clone()
                layer.weight.copy_(fake_quant_weight(layer.weight, _weight_axis(layer), spec.weight_bits))
        for layer in layers.values():
            handles.append(layer.register_forward_pre_hook(
                lambda module, args: (fake_quant_tokens(args[0], spec.act_bits), *args[1:])))
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, weight in originals.items():
                layers[name].weight.copy_(weight)
