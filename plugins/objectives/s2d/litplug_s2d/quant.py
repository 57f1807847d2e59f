"""Simulated (fake) WxAy quantisation of a model's linear layers, with torch's own primitives.

Weights: symmetric, per output channel (``PerChannelMinMaxObserver`` for the scales,
``torch.fake_quantize_per_channel_affine`` for the rounding). Activations (each linear layer's input),
asymmetric, in one of two schemes:

- ``token`` (setting ``wXaY``): per token, computed on the fly for every forward (dynamic), with the
  observer and ``fake_quantize_per_channel_affine`` along the token axis. Each token gets its own range,
  so an outlier costs precision only in its own token.
- ``tensor`` (setting ``wXaY-tensor``): one static scale per layer input, calibrated beforehand as the
  min/max over calibration batches (``MinMaxObserver``, ``fake_quantize_per_tensor_affine``), as in the
  static per-tensor PTQ baselines of the paper. One outlier stretches the range of every token.

Embeddings, the output head, norms and the attention matmuls stay in full precision, as in the usual
W4A4 linear-layer setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.ao.quantization.observer import MinMaxObserver, PerChannelMinMaxObserver
from transformers.pytorch_utils import Conv1D

from litplug.api import ConfigError

ACT_SCHEMES = ("token", "tensor")  # dynamic per-token | static per-tensor (calibrated)


@dataclass(frozen=True)
class QuantSpec:
    weight_bits: int
    act_bits: int
    act_scheme: str = "token"

    @property
    def name(self) -> str:
        base = f"w{self.weight_bits}a{self.act_bits}"
        return base if self.act_scheme == "token" else f"{base}-{self.act_scheme}"


def parse_specs(text: str, schemes: str = "token") -> list[QuantSpec]:
    """``"w4a4,w8a8"`` x ``"token,tensor"`` -> specs (bits-major); bits must be in 2..8 (the observers'
    integer range)."""
    kinds = [t.strip().lower() for t in schemes.split(",") if t.strip()]
    bad = [k for k in kinds if k not in ACT_SCHEMES]
    if bad or not kinds:
        raise ConfigError(f"--act-quant: '{schemes}' must be a comma list of {', '.join(ACT_SCHEMES)} (token: dynamic "
                          "per-token activation scales; tensor: static per-tensor scales from calibration batches).")
    specs = []
    for item in [t.strip().lower() for t in text.split(",") if t.strip()]:
        match = re.fullmatch(r"w(\d+)a(\d+)", item)
        if not match or not all(2 <= int(b) <= 8 for b in match.groups()):
            raise ConfigError(f"--bits: '{item}' is not a setting like w4a4 or w8a8 (weight and activation bits, "
                              "each from 2 to 8).")
        specs.extend(QuantSpec(int(match[1]), int(match[2]), kind) for kind in kinds)
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


class TensorRange:
    """Running min/max of one layer input over calibration batches: the static per-tensor range."""

    def __init__(self) -> None:
        self.low, self.high = float("inf"), float("-inf")

    def add(self, rows: torch.Tensor) -> None:
        if rows.numel():
            self.low, self.high = min(self.low, float(rows.min())), max(self.high, float(rows.max()))

    def qparams(self, bits: int) -> tuple[float, int]:
        """(scale, zero_point) of asymmetric ``bits``-bit quantisation of this range (``MinMaxObserver``)."""
        if self.low > self.high:
            raise ValueError("no calibration rows were observed")
        observer = MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0,
                                  quant_max=2**bits - 1)
        observer(torch.tensor([self.low, self.high]))
        scale, zero_point = observer.calculate_qparams()
        return float(scale), int(zero_point)


def fake_quant_tensor(x: torch.Tensor, scale: float, zero_point: int, bits: int) -> torch.Tensor:
    """Asymmetric per-tensor fake quantisation with a fixed (calibrated) scale and zero point."""
    out = torch.fake_quantize_per_tensor_affine(x.detach().float(), scale, zero_point, 0, 2**bits - 1)
    return out.to(x.dtype)


def _weight_axis(layer: torch.nn.Module) -> int:
    return 1 if isinstance(layer, Conv1D) else 0  # Conv1D stores [in, out]


def _input_quantizer(spec: QuantSpec, ranges: dict[str, TensorRange] | None, name: str) -> Callable[..., Any]:
    if spec.act_scheme == "token":
        return lambda module, args: (fake_quant_tokens(args[0], spec.act_bits), *args[1:])
    if ranges is None or name not in ranges:
        raise ValueError(f"act_scheme 'tensor' needs a calibrated range for every layer (missing: {name})")
    scale, zero_point = ranges[name].qparams(spec.act_bits)
    return lambda module, args: (fake_quant_tensor(args[0], scale, zero_point, spec.act_bits), *args[1:])


@contextmanager
def simulated(layers: dict[str, torch.nn.Module], spec: QuantSpec,
              ranges: dict[str, TensorRange] | None = None) -> Iterator[None]:
    """Inside the block, ``layers`` compute with fake-quantised weights and inputs; restored on exit.
    ``ranges`` (from calibration, by layer name) are needed for the ``tensor`` scheme."""
    originals: dict[str, torch.Tensor] = {}
    handles = []
    hooks = {name: _input_quantizer(spec, ranges, name) for name in layers}
    try:
        with torch.no_grad():
            for name, layer in layers.items():
                originals[name] = layer.weight.detach().clone()
                layer.weight.copy_(fake_quant_weight(layer.weight, _weight_axis(layer), spec.weight_bits))
        for name, layer in layers.items():
            handles.append(layer.register_forward_pre_hook(hooks[name]))
        yield
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, weight in originals.items():
                layers[name].weight.copy_(weight)
