"""The scaling-law fitter recovers the law's own parameters, and the law has the paper's shapes."""

from __future__ import annotations

import csv
import json

import mlflow
import numpy as np
import pytest
from litplug_spt.law import GAP_PARAMS, TRAIN_PARAMS, Curve, Law, fit_law, recommend_delta

from litplug.testing import cli as main

TRUE = Law(A_train=1.0, b_train_s=-0.6, b_train_g=-0.2, kappa0=2.0, kappa1=0.1, kappa2=0.01, kappa3=1.0,
           alpha1=5.0, alpha2=1.5, alpha3=-5.0, b_gap_s=8.0, b_gap_g=-0.3)
DELTAS = [0.0, 0.01, 0.02, 0.05, 0.1]
TOKENS = np.logspace(4, 7, 25)


def law_curves(law: Law = TRUE, deltas: list[float] = DELTAS, noise: float = 0.0, seed: int = 0) -> list[Curve]:
    rng = np.random.default_rng(seed)
    return [Curve(d, TOKENS, law.train_loss(TOKENS, d) + rng.normal(0, noise, TOKENS.shape),
                  law.test_loss(TOKENS, d) + rng.normal(0, noise, TOKENS.shape), f"d={d}") for d in deltas]


def write_csv(path, curves: list[Curve], with_delta: bool = True) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((["delta"] if with_delta else []) + ["tokens", "train_loss", "test_loss"])
        for c in curves:
            for t, a, b in zip(c.tokens, c.train_loss, c.test_loss):
                writer.writerow(([c.delta] if with_delta else []) + [t, a, b])


def test_fit_recovers_the_parameters_of_curves_made_by_the_law() -> None:
    fit = fit_law(law_curves())
    for name in (*TRAIN_PARAMS, *GAP_PARAMS):
        assert getattr(fit.law, name) == pytest.approx(getattr(TRUE, name), rel=1e-3, abs=1e-6), name
    assert fit.rmse_test < 1e-8


def test_fit_with_noise_still_predicts_and_recommends_like_the_truth() -> None:
    fit = fit_law(law_curves(noise=0.005))
    grid_t, grid_d = np.meshgrid(TOKENS, np.linspace(0, 0.1, 11))
    assert np.abs(fit.law.test_loss(grid_t, grid_d) - TRUE.test_loss(grid_t, grid_d)).max() < 0.03
    for budget in (1e6, 1e7, 1e8):
        assert recommend_delta(fit.law, budget, 0.1)[0] == pytest.approx(recommend_delta(TRUE, budget, 0.1)[0],
                                                                         abs=0.005)


def test_the_law_represents_overfitting_and_prefers_smaller_delta_for_longer_horizons() -> None:
    t = np.logspace(3, 10, 400)
    assert np.all(np.diff(TRUE.test_loss(t, 0.0)) < 0)  # standard pretraining: monotone
    high = TRUE.test_loss(t, 0.1)
    assert 0 < int(np.argmin(high)) < len(t) - 1  # delta = 10%: an interior minimum (overfitting)
    assert np.all(np.diff(TRUE.b_gap(np.linspace(0, 1, 50))) > 0)  # b_gap grows with delta
    chosen = [recommend_delta(TRUE, budget, 0.1)[0] for budget in (1e5, 1e7, 1e9)]
    assert chosen[0] > chosen[1] > chosen[2] > 0


def test_fit_law_cli_writes_plot_json_and_logs_to_mlflow(tmp_path) -> None:
    data = tmp_path / "pilots.csv"
    write_csv(data, law_curves())
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["spt", "fit-law", str(data), "--out", str(tmp_path / "fit"), "--fit-delta-max", "0.05",
                 "--delta-max", "0.1", "--budget", "1e8", "--fit-min-tokens", "1.5e5", "--tracking-uri", uri])
    assert code == 0
    report = json.loads((tmp_path / "fit" / "law.json").read_text())
    assert report["law"]["b_gap_s"] == pytest.approx(TRUE.b_gap_s, rel=1e-3)
    assert report["fitted_points"] == 4 * int((TOKENS >= 1.5e5).sum())  # 4 deltas <= 5%, early points left out
    # fitted on delta <= 5%, the law forecasts the 10% run it never saw
    assert [r["delta"] for r in report["forecast_runs"]] == [0.1] and report["forecast_runs"][0]["rmse_test"] < 1e-6
    assert report["recommendations"][0]["delta"] == pytest.approx(recommend_delta(TRUE, 1e8, 0.1)[0], abs=1e-3)
    assert (tmp_path / "fit" / "law.png").read_bytes()[:4] == b"\x89PNG"
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("litplug-spt-fit-law").experiment_id])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"law.png", "law.json", "curves.csv"}


def test_fit_law_rejects_too_few_runs_and_curves_without_delta(tmp_path, capsys) -> None:
    few = tmp_path / "few.csv"
    write_csv(few, law_curves(deltas=[0.0, 0.01, 0.05]))
    assert main(["spt", "fit-law", str(few), "--out", str(tmp_path / "a"), "--no-mlflow"]) == 2
    assert "at >= 4 distinct delta values" in capsys.readouterr().err
    no_delta = tmp_path / "no_delta.csv"
    write_csv(no_delta, law_curves(), with_delta=False)
    assert main(["spt", "fit-law", str(no_delta), "--out", str(tmp_path / "b"), "--no-mlflow"]) == 2
    assert "lacks column(s) delta" in capsys.readouterr().err
    run = tmp_path / "plain_run"
    run.mkdir()
    (run / "config.yaml").write_text("plugins: {}\n")
    (run / "mlflow_run.json").write_text(json.dumps({"run_id": "x", "tracking_uri": "sqlite:///nowhere.db"}))
    assert main(["spt", "fit-law", str(run), str(few), "--out", str(tmp_path / "c"), "--no-mlflow"]) == 2
    assert "has no plugins.spt.delta" in capsys.readouterr().err
