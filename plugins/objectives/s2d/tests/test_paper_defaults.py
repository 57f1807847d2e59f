"""Issue 18: the paper's layer-selection rule is the default, static per-tensor activation quantisation,
and the flat results (drops from each model's own FP score) that a sweep reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
from litplug_s2d.config import S2DConfig
from litplug_s2d.layers import linear_layers
from litplug_s2d.quant import QuantSpec, TensorRange, fake_quant_tensor, fake_quant_tokens, parse_specs, simulated
from litplug_s2d.regularizer import SpectralDecay
from litplug_s2d.report import calibrate, flat_metrics

from litplug.api import context, to_yaml
from litplug.testing import cli


def test_default_selection_is_the_papers_activation_rule() -> None:
    assert S2DConfig().selection == "pcdr"


@torch.no_grad()
def test_defaults_select_a_layer_whose_activations_come_from_its_top_direction(tiny_model: torch.nn.Module) -> None:
    """Every input of layer 0's q_proj lies along its top right-singular vector, so its outputs come from the
    top component alone (PCDR_1 = 1), while its spectrum is flat (top-3 share of sum sigma far below 0.95).
    The default (activation) rule selects it with k=1; the spectral-share rule selects no layer at all."""
    model = tiny_model.eval()
    hidden = model.config.hidden_size
    direction = torch.nn.functional.normalize(torch.randn(hidden, generator=torch.Generator().manual_seed(1)), dim=0)
    model.get_input_embeddings().weight.copy_(direction.expand_as(model.get_input_embeddings().weight))
    name = "model.layers.0.self_attn.q_proj"
    layer = model.get_submodule(name)
    g = torch.Generator().manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=g))
    v, _ = torch.linalg.qr(torch.cat([direction[:, None], torch.randn(hidden, hidden - 1, generator=g)], dim=1))
    sigma = torch.linspace(1.5, 1.0, hidden)  # flat: the top 3 hold ~11 % of sum sigma
    layer.weight.copy_((u * sigma) @ v.T)  # v[:, 0] = +-direction: the top right-singular vector
    names = list(linear_layers(model))
    batch = {"input_ids": torch.randint(0, model.config.vocab_size, (2, 12), generator=g),
             "attention_mask": torch.ones(2, 12, dtype=torch.long)}

    default = SpectralDecay(model, names, S2DConfig())
    default.refresh(model, 0, batch)
    assert default.k_targets[names.index(name)] == 1

    spectral = SpectralDecay(model, names, S2DConfig(selection="sigma_mass"))
    spectral.refresh(model, 0, batch)
    assert sum(spectral.k_targets) == 0, "the spectral-share rule at tau=0.95 selects nothing on flat spectra"


def test_act_schemes_are_parsed_bits_major_and_named() -> None:
    specs = parse_specs("w4a4,w8a8", "token,tensor")
    assert [s.name for s in specs] == ["w4a4", "w4a4-tensor", "w8a8", "w8a8-tensor"]
    assert parse_specs("w4a4")[0] == QuantSpec(4, 4, "token")
    for bad in ("", "channel", "token,bogus"):
        with pytest.raises(Exception, match="--act-quant"):
            parse_specs("w4a4", bad)


def test_static_per_tensor_scale_is_the_calibrated_range_and_one_outlier_costs_every_token() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, generator=g)
    x[0, 0] = 100.0  # one outlier token
    calibration = TensorRange()
    for chunk in x.split(16):
        calibration.add(chunk)
    assert (calibration.low, calibration.high) == (float(x.min()), float(x.max()))
    scale, zero_point = calibration.qparams(4)
    assert scale == pytest.approx((float(x.max()) - float(x.min())) / 15, rel=1e-6)
    xq = fake_quant_tensor(x, scale, zero_point, 4)
    assert len(torch.unique(xq)) <= 16  # one grid for the whole tensor
    torch.testing.assert_close(xq, torch.round(x / scale + zero_point).clamp(0, 15).sub(zero_point) * scale)
    # the outlier stretches the static range: the other tokens lose far more than under per-token scales
    rest = slice(1, None)
    static_error = (xq[rest] - x[rest]).abs().mean()
    token_error = (fake_quant_tokens(x, 4)[rest] - x[rest]).abs().mean()
    assert static_error > 5 * token_error
    # static: an input outside the calibrated range clips to it (the scale is not recomputed)
    assert float(fake_quant_tensor(torch.tensor([1e4]), scale, zero_point, 4)) == pytest.approx(
        (15 - zero_point) * scale)


@torch.no_grad()
def test_simulated_tensor_scheme_uses_the_calibrated_ranges(tiny_model: torch.nn.Module) -> None:
    model = tiny_model.eval()
    layers = linear_layers(model)
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(0, model.config.vocab_size, (2, 10), generator=g),
                "attention_mask": torch.ones(2, 10, dtype=torch.long)} for _ in range(2)]
    batches[1]["attention_mask"][:, 5:] = 0  # padding is not calibrated on
    ranges = calibrate(model, layers, batches)
    name = "model.layers.1.mlp.down_proj"
    seen: list[torch.Tensor] = []
    handle = layers[name].register_forward_pre_hook(lambda m, args: seen.append(args[0].reshape(-1, args[0].shape[-1])))
    for batch in batches:
        model.base_model(input_ids=batch["input_ids"])
    handle.remove()
    real = torch.cat([seen[0], seen[1].reshape(2, 10, -1)[:, :5].reshape(-1, seen[1].shape[-1])])
    assert (ranges[name].low, ranges[name].high) == (float(real.min()), float(real.max()))

    ids = batches[0]["input_ids"]
    fp = model(ids).logits
    static = QuantSpec(8, 8, "tensor")
    with pytest.raises(ValueError, match="calibrated range"):
        with simulated(layers, static):
            pass
    with simulated(layers, static, ranges):
        quantised = model(ids).logits
    with simulated(layers, QuantSpec(8, 8, "token")):
        dynamic = model(ids).logits
    assert 0 < float((quantised - fp).abs().max())
    assert not torch.equal(quantised, dynamic)
    torch.testing.assert_close(model(ids).logits, fp, rtol=0, atol=0)  # restored


def test_flat_metrics_report_each_setting_and_its_drop_from_the_same_models_fp() -> None:
    report = {"summary": {"sigma_max": 2.0},
              "metrics": {"fp": {"a/val_loss": 0.1, "a/exact_match": 0.9},
                          "w4a4-tensor": {"a/val_loss": 0.4, "a/exact_match": 0.6}}}
    flat = flat_metrics(report)
    assert flat["quant/sigma_max"] == 2.0
    assert flat["quant/fp/a/exact_match"] == 0.9
    assert flat["quant/w4a4-tensor/a/exact_match"] == 0.6
    assert flat["quant/w4a4-tensor/a/exact_match_drop"] == pytest.approx(0.3)
    assert flat["quant/w4a4-tensor/a/val_loss_rise"] == pytest.approx(0.3)
    assert "quant/fp/a/exact_match_drop" not in flat


def test_quant_report_writes_sweep_results_with_both_schemes(litplug_run: Callable[..., Any],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITPLUG_PLUGINS", "s2d")
    run = litplug_run({"s2d": {"tau": 0.05}})
    (run.run_dir / "config.yaml").write_text(to_yaml(context(run.module).config))
    cell = run.run_dir.parent / "sweep_cell"  # not created beforehand: the verb makes it
    assert cli(["quant-report", str(run.run_dir), "--max-batches", "1", "--bits", "w4a4", "--calib-batches", "2",
                "--out", str(cell / "quant_report.json"), "--results", str(cell / "results.json")]) == 0
    report = json.loads((cell / "quant_report.json").read_text())
    assert report["settings"] == ["fp", "w4a4", "w4a4-tensor"]  # default --act-quant token,tensor
    metrics = json.loads((cell / "results.json").read_text())["metrics"]
    fp = report["metrics"]["fp"]["arithmetic/exact_match"]
    for setting in ("w4a4", "w4a4-tensor"):
        em = report["metrics"][setting]["arithmetic/exact_match"]
        assert metrics[f"quant/{setting}/arithmetic/exact_match"] == em
        assert metrics[f"quant/{setting}/arithmetic/exact_match_drop"] == pytest.approx(fp - em)
    assert metrics["quant/fp/arithmetic/exact_match"] == run.results["metrics"]["eval/arithmetic/exact_match"]
    assert report["metrics"]["w4a4-tensor"]["arithmetic/val_loss"] != report["metrics"]["w4a4"]["arithmetic/val_loss"]
    assert all(isinstance(v, float) for v in metrics.values())


def test_selection_all_forces_k_max_everywhere_and_full_rank_power_one_is_exact_l2(tiny_model: torch.nn.Module) -> None:
    """The sweep's two forced arms: k=1 S2D on every layer, and the L2 control lam/2 ||W||_F^2 (n=1, every
    component, refreshed every step so the cached bases are the current SVD)."""
    names = list(linear_layers(tiny_model))
    forced = SpectralDecay(tiny_model, names, S2DConfig(selection="all", k_max=1, lam=0.05))
    forced.refresh(tiny_model, 0)  # no batch needed: no activation rule
    assert forced.k_targets == [1] * len(names)

    with pytest.warns(UserWarning, match="no longer selective"):
        cfg = S2DConfig(selection="all", k_max=256, power=1.0, lam=0.05, refresh_every=1)
    l2 = SpectralDecay(tiny_model, names, cfg)
    l2.refresh(tiny_model, 0)
    ranks = [min(tiny_model.get_submodule(n).weight.shape) for n in names]
    assert l2.k_targets == ranks
    value, _ = l2(tiny_model)
    weights = [tiny_model.get_submodule(n).weight for n in names]
    expected = 0.05 / 2 * sum(w.detach().square().sum() for w in weights)
    assert float(value) == pytest.approx(float(expected), rel=1e-4)
    grads = torch.autograd.grad(value, weights)
    for w, grad in zip(weights, grads):
        torch.testing.assert_close(grad, 0.05 * w.detach(), rtol=1e-3, atol=1e-6)
