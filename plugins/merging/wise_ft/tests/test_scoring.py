"""Sample scoring: the bias–variance identity of pass@2, known values, and the toy diversity check."""

from __future__ import annotations

import random

import pytest
import torch
from litplug_wise_ft.interpolate import interpolate_tensor
from litplug_wise_ft.scoring import mlflow_key, rho_variance, score_samples

from litplug.api import mean_pass_at_k


def test_pass_at_2_bias_variance_identity() -> None:
    """1 − pass@2 = (1 − pass@1)² + Var_x(ρ_x), exactly, for the unbiased estimators (METHODS.md §5)."""
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 40)
        counts = [(n, rng.randint(0, n)) for _ in range(rng.randint(1, 50))]
        p1, p2 = mean_pass_at_k(counts, 1), mean_pass_at_k(counts, 2)
        assert 1 - p2 == pytest.approx((1 - p1) ** 2 + rho_variance(counts), abs=1e-12)


def test_rho_variance_is_unbiased_on_average() -> None:
    """E over binomial draws of the estimate equals Var(ρ) of the true solve rates."""
    rho = [0.05, 0.5, 0.9, 1.0]
    true_var = sum(r * r for r in rho) / len(rho) - (sum(rho) / len(rho)) ** 2
    rng = random.Random(0)
    draws = 4000
    estimates = [rho_variance([(8, sum(rng.random() < r for _ in range(8))) for r in rho]) for _ in range(draws)]
    assert sum(estimates) / draws == pytest.approx(true_var, abs=0.01)
    naive = [sum((c / 8) ** 2 for c in row) / 4 - (sum(row) / 32) ** 2
             for row in ([sum(rng.random() < r for _ in range(8)) for r in rho] for _ in range(draws))]
    assert sum(naive) / draws > true_var + 0.005  # the plug-in estimate is biased upwards by binomial noise


def test_score_samples_known_values() -> None:
    samples = [["5 7", "5 7", "1 2", "5 7"], ["9", "8", "8", "7"]]
    scores = score_samples(samples, greedy=["5 7", "8"], answers=["5 7", "9"], ks=[1, 4])
    assert scores["pass@1"] == pytest.approx((3 / 4 + 1 / 4) / 2)
    assert scores["pass@4"] == 1.0
    assert scores["majority_vote"] == 0.5  # "5 7" wins the first vote, "8" (wrong) the second
    assert scores["greedy"] == 0.5
    assert scores["var_rho"] == pytest.approx((0.5 + 0.0) / 2 - 0.5**2)


def test_mlflow_key_has_no_at_sign() -> None:
    assert mlflow_key("pass@16") == "pass_at_16"


def test_interpolating_a_sharp_policy_with_a_flat_one_raises_entropy() -> None:
    """The toy behaviour of METHODS.md §5(g)6: mixing a sharp late softmax policy with a flatter early
    one raises the entropy of its samples relative to the late model."""
    early, late = torch.tensor([0.4, -0.4]), torch.tensor([4.0, -4.0])

    def entropy(logits: torch.Tensor) -> float:
        p = logits.softmax(-1)
        return float(-(p * p.log()).sum())

    curve = [entropy(interpolate_tensor(early, late, a)) for a in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(x > y for x, y in zip(curve, curve[1:])), curve
    assert curve[2] > curve[-1]
