"""The quantization report: what S2D is meant to change, measured on one model.

Per linear layer: the top singular values and their share of the spectrum, and the activation outlier
ratio max|a| / std(a) of its output and of its input (the tensor W4A4 quantises), over validation tokens.
Per setting (full precision, then each simulated WxAy): the validation LM loss of every source and, for
prompt/answer sources, exact-match accuracy of greedy answers. ``flat_metrics`` turns the report into one
flat ``{name: value}`` dict (``results.json`` for a sweep), with each setting's drop from the same
model's own full-precision score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from litplug.api import SourceSpec, StepContext, evaluate_all
from litplug_s2d.layers import out_in_weight
from litplug_s2d.quant import QuantSpec, TensorRange, simulated

Batches = dict[str, list[dict[str, torch.Tensor]]]  # validation batches by source name


def spectra(layers: dict[str, torch.nn.Module], top: int) -> dict[str, dict[str, Any]]:
    """Top singular values of each layer and their share of sum(sigma) (the sigma_mass rule's quantity)."""
    out = {}
    for name, layer in layers.items():
        sigma = torch.linalg.svdvals(out_in_weight(layer).detach().float())
        out[name] = {"sigma": sigma[:top].tolist(), "top_share": float(sigma[:top].sum() / sigma.sum())}
    return out


class _Moments:
    """Running max|a|, mean and std of a stream of activation rows (float64, so sums stay exact enough)."""

    def __init__(self) -> None:
        self.n, self.total, self.squares, self.max_abs = 0, 0.0, 0.0, 0.0

    def add(self, rows: torch.Tensor) -> None:
        rows = rows.double()
        self.n += rows.numel()
        self.total += float(rows.sum())
        self.squares += float(rows.square().sum())
        self.max_abs = max(self.max_abs, float(rows.abs().max())) if rows.numel() else self.max_abs

    def stats(self) -> dict[str, float]:
        mean = self.total / max(self.n, 1)
        std = max(self.squares / max(self.n, 1) - mean**2, 0.0) ** 0.5
        return {"max_abs": self.max_abs, "std": std, "outlier_ratio": self.max_abs / std if std > 0 else 0.0}


@torch.no_grad()
def activation_stats(model: torch.nn.Module, layers: dict[str, torch.nn.Module], batches: Batches) -> dict[str, Any]:
    """Outlier statistics of every layer's output and input over the real (non-padding) tokens."""
    outputs = {name: _Moments() for name in layers}
    inputs = {name: _Moments() for name in layers}
    real: list[torch.Tensor] = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            keep = real[0].to(output.device)
            inputs[name].add(args[0].reshape(-1, args[0].shape[-1])[keep])
            outputs[name].add(output.reshape(-1, output.shape[-1])[keep])
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    try:
        for source_batches in batches.values():
            for batch in source_batches:
                real[:] = [batch["attention_mask"].reshape(-1).bool()]
                model.base_model(input_ids=batch["input_ids"].to(model.device))
    finally:
        for handle in handles:
            handle.remove()
    return {name: {"output": outputs[name].stats(), "input": inputs[name].stats()} for name in layers}


@torch.no_grad()
def calibrate(model: torch.nn.Module, layers: dict[str, torch.nn.Module],
              batches: list[dict[str, torch.Tensor]]) -> dict[str, TensorRange]:
    """Static per-tensor ranges: min/max of every layer's input over the real tokens of ``batches``, in
    full precision (observers on the float model, as in eager-mode static PTQ)."""
    ranges = {name: TensorRange() for name in layers}
    real: list[torch.Tensor] = []

    def hook(name: str) -> Callable[..., None]:
        def record(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            ranges[name].add(args[0].reshape(-1, args[0].shape[-1])[real[0].to(args[0].device)])
        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    try:
        for batch in batches:
            real[:] = [batch["attention_mask"].reshape(-1).bool()]
            model.base_model(input_ids=batch["input_ids"].to(model.device))
    finally:
        for handle in handles:
            handle.remove()
    return ranges


@torch.no_grad()
def task_metrics(ctx: StepContext, sources: list[SourceSpec], batches: Batches, generate: bool) -> dict[str, float]:
    """``<source>/val_loss`` (mean LM loss over the given batches) and ``<source>/exact_match``."""
    metrics = {}
    for source, source_batches in batches.items():
        losses = [float(ctx.losses({k: v.to(ctx.device) for k, v in b.items()}, "validate")["lm"])
                  for b in source_batches]
        metrics[f"{source}/val_loss"] = sum(losses) / len(losses)
    if generate:
        for source, result in evaluate_all(ctx.model, ctx.tokenizer, ctx.hooks, sources, ctx.config).items():
            metrics[f"{source}/exact_match"] = float(result["exact_match"])
    return metrics


def summarise(layer_spectra: dict[str, Any], stats: dict[str, Any]) -> dict[str, float]:
    """Model-level numbers: the largest and mean sigma_max, and the largest and mean outlier ratios."""
    sigma_max = [s["sigma"][0] for s in layer_spectra.values()]
    out_ratio = [s["output"]["outlier_ratio"] for s in stats.values()]
    in_ratio = [s["input"]["outlier_ratio"] for s in stats.values()]
    return {
        "sigma_max": max(sigma_max), "sigma_max_mean": sum(sigma_max) / len(sigma_max),
        "outlier_ratio_max": max(out_ratio), "outlier_ratio_mean": sum(out_ratio) / len(out_ratio),
        "input_outlier_ratio_max": max(in_ratio), "input_outlier_ratio_mean": sum(in_ratio) / len(in_ratio),
        "activation_max_abs": max(s["output"]["max_abs"] for s in stats.values()),
    }


def build_report(ctx: StepContext, sources: list[SourceSpec], layers: dict[str, torch.nn.Module], batches: Batches,
                 specs: list[QuantSpec], top: int = 3, generate: bool = True,
                 calibration: list[dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    """The whole report as a JSON-able dict: ``summary``, ``metrics`` by setting, ``layers``.

    :param ctx: a step context of the model (``litplug.api.context(build_module(run), "validate")``).
    :param sources: the run's data sources (prompt/answer ones get exact match).
    :param calibration: batches the static (``tensor``) activation ranges are calibrated on; needed only
        when a spec uses that scheme.
    """
    for part in (ctx.model, *ctx.aux.values()):
        part.eval()
    layer_spectra = spectra(layers, top)
    stats = activation_stats(ctx.model, layers, batches)
    ranges = None
    if any(spec.act_scheme == "tensor" for spec in specs):
        if not calibration:
            raise ValueError("the 'tensor' activation scheme needs calibration batches")
        ranges = calibrate(ctx.model, layers, calibration)
    metrics = {"fp": task_metrics(ctx, sources, batches, generate)}
    for spec in specs:
        with simulated(layers, spec, ranges):
            metrics[spec.name] = task_metrics(ctx, sources, batches, generate)
    per_layer = {name: {**layer_spectra[name], "output": stats[name]["output"], "input": stats[name]["input"]}
                 for name in layers}
    return {"summary": summarise(layer_spectra, stats), "metrics": metrics, "layers": per_layer}


def flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    """``quant/<summary key>``, ``quant/<setting>/<metric>`` for every setting, and for each quantised
    setting the change from the same model's full precision: ``.../exact_match_drop`` = FP - quantised
    (positive = lost accuracy) and ``.../val_loss_rise`` = quantised - FP, so a sweep pairs the drops by
    seed without mixing two models' FP scores."""
    out = {f"quant/{key}": float(value) for key, value in report["summary"].items()}
    fp = report["metrics"]["fp"]
    for setting, metrics in report["metrics"].items():
        for key, value in metrics.items():
            out[f"quant/{setting}/{key}"] = float(value)
            if setting == "fp" or key not in fp:
                continue
            if key.endswith("/exact_match"):
                out[f"quant/{setting}/{key}_drop"] = float(fp[key]) - float(value)
            elif key.endswith("/val_loss"):
                out[f"quant/{setting}/{key}_rise"] = float(value) - float(fp[key])
    return out
