"""Simulated quantisation and the ``litplug quant-report`` verb."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_s2d.layers import linear_layers
from litplug_s2d.quant import QuantSpec, fake_quant_tokens, fake_quant_weight, parse_specs, simulated

from litplug.api import context, to_yaml
from litplug.testing import cli


def test_weights_are_per_channel_and_activations_per_token_on_the_integer_grid() -> None:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 32, generator=g) * torch.logspace(-2, 2, 6).unsqueeze(1)  # very different row scales
    q = fake_quant_weight(w, 0, 4)
    for row, qrow in zip(w, q):
        step = row.abs().max() / 7.5  # symmetric 4-bit: 16 levels, scale from the row's own max
        levels = torch.round(qrow / step)
        torch.testing.assert_close(qrow, levels * step, rtol=1e-5, atol=1e-7)
        assert levels.min() >= -8 and levels.max() <= 7
        assert (qrow - row).abs().max() <= step / 2 * (1 + 1e-5)  # round-to-nearest; the max clips 7.5 -> 7
    x = torch.randn(3, 5, 32, generator=g) * 10
    xq = fake_quant_tokens(x, 4)
    assert xq.shape == x.shape
    for token, qtoken in zip(x.reshape(-1, 32), xq.reshape(-1, 32)):
        assert len(torch.unique(qtoken)) <= 16
        assert (qtoken - token).abs().max() <= (token.max() - token.min()) / 15 + 1e-5
    assert (fake_quant_tokens(x, 8) - x).abs().max() < (xq - x).abs().max()


def test_simulated_quantisation_changes_outputs_and_restores_the_model(tiny_model: torch.nn.Module) -> None:
    tiny_model.eval()
    ids = torch.randint(0, tiny_model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with torch.no_grad():
        fp = tiny_model(ids).logits
        errors = {}
        for spec in (QuantSpec(8, 8), QuantSpec(4, 4)):
            with simulated(linear_layers(tiny_model), spec):
                errors[spec.name] = float((tiny_model(ids).logits - fp).abs().max())
        after = tiny_model(ids).logits
    assert 0 < errors["w8a8"] < errors["w4a4"]
    torch.testing.assert_close(after, fp, rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in tiny_model.state_dict().items())


def test_bits_are_parsed_and_bad_settings_rejected() -> None:
    assert [s.name for s in parse_specs("W4A4, w8a8")] == ["w4a4", "w8a8"]
    for bad in ("w4", "w16a16", "w1a8", ""):
        with pytest.raises(Exception, match="--bits"):
            parse_specs(bad)


def test_quant_report_of_a_run_matches_its_validation_loss(litplug_run: Callable[..., Any],
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITPLUG_PLUGINS", "s2d")  # plugin verbs load installed plugins: only ours
    run = litplug_run({"s2d": {"tau": 0.05}})
    # the core writes config.yaml only when tracking is on; MLflow's first sqlite setup is slow, so write it here
    (run.run_dir / "config.yaml").write_text(to_yaml(context(run.module).config))
    assert cli(["quant-report", str(run.run_dir), "--max-batches", "1", "--bits", "w4a4,w8a8",
                "--act-quant", "token"]) == 0
    report = json.loads((run.run_dir / "quant_report.json").read_text())
    assert report["settings"] == ["fp", "w4a4", "w8a8"]
    fp = report["metrics"]["fp"]
    # the same first validation batch the run validated on (limit_val_batches=1)
    assert fp["arithmetic/val_loss"] == pytest.approx(run.results["metrics"]["val/arithmetic/loss"], rel=1e-5)
    assert fp["arithmetic/exact_match"] == run.results["metrics"]["eval/arithmetic/exact_match"]
    assert set(report["metrics"]["w4a4"]) == set(fp)
    assert len(report["layers"]) == 14
    layer = report["layers"]["model.layers.0.mlp.down_proj"]
    weight = run.module.model.get_submodule("model.layers.0.mlp.down_proj").weight
    assert layer["sigma"] == pytest.approx(torch.linalg.svdvals(weight)[:3].tolist(), rel=1e-5)
    assert layer["output"]["outlier_ratio"] > 1
    assert report["summary"]["sigma_max"] == max(v["sigma"][0] for v in report["layers"].values())
    assert "w4a4" in capsys.readouterr().out

    # the exported model directory works too, with the data given as overrides (and no file written)
    out = run.run_dir / "from_export.json"
    args = ["quant-report", str(run.export_dir), "data.sources=[{task: arithmetic, params: {digits: 2}, "
            "num_train: 256, num_validation: 16, num_test: 16}]", "data.seq_len=16", "data.batch_size=8",
            "--no-generate", "--max-batches", "1", "--out", str(out), "--layers", "*.mlp.*"]
    assert cli(args) == 0
    from_export = json.loads(out.read_text())
    assert len(from_export["layers"]) == 6
    assert from_export["metrics"]["fp"]["arithmetic/val_loss"] == pytest.approx(fp["arithmetic/val_loss"], rel=1e-5)


def test_quant_report_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITPLUG_PLUGINS", "s2d")
    assert cli(["quant-report", str(tmp_path / "missing")]) == 2
    assert "neither a finished litplug run" in capsys.readouterr().err
    assert cli(["quant-report", str(tmp_path), "--bits", "w3a9"]) == 2
    assert "--bits" in capsys.readouterr().err
