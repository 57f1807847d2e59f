"""pass@k, majority vote and exact match."""

from __future__ import annotations

import math
import random

import pytest

from litplug.metrics import exact_match, majority_vote, mean_pass_at_k, pass_at_k


def _direct(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_pass_at_k_matches_combinatorial_formula():
    rng = random.Random(0)
    for _ in range(2000):
        n = rng.randint(1, 200)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(_direct(n, c, k), rel=1e-9, abs=1e-12)


def test_pass_at_1_is_fraction_correct():
    for n in range(1, 40):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_monotone_in_k():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 60)
        c = rng.randint(0, n)
        values = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))


def test_pass_at_k_edge_cases():
    assert pass_at_k(10, 8, 3) == 1.0  # n - c = 2 < k: every draw of 3 contains a correct one
    assert pass_at_k(5, 5, 5) == 1.0
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(1, 1, 1) == 1.0
    # large n stays finite and accurate where the binomials are astronomically large
    assert pass_at_k(10_000, 1, 1) == pytest.approx(1e-4)
    assert 0.0 < pass_at_k(100_000, 3, 50) < 1.0


@pytest.mark.parametrize(
    "n, c, k, text",
    [(5, 1, 6, "k <= n"), (5, 6, 1, "c <= n"), (-1, 0, 1, "non-negative"), (5, -1, 1, "non-negative"),
     (5, 1, -2, "non-negative"), (5, 1, 0, "k >= 1"), (5.0, 1, 1, "integer"), (5, True, 1, "integer")],
)
def test_pass_at_k_invalid_arguments(n, c, k, text):
    with pytest.raises(ValueError, match=text):
        pass_at_k(n, c, k)


def test_mean_pass_at_k():
    counts = [(10, 3), (10, 0), (5, 5)]
    expected = sum(_direct(n, c, 2) for n, c in counts) / 3
    assert mean_pass_at_k(counts, 2) == pytest.approx(expected)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)
    with pytest.raises(ValueError):
        mean_pass_at_k([(3, 1)], 4)


def test_majority_vote():
    assert majority_vote(["a", "b", "a"]) == "a"
    assert majority_vote(["b", "a", "a", "b"]) == "b"  # tie -> first occurrence
    assert majority_vote(["x"]) == "x"
    assert majority_vote(["1 2", " 1  2 ", "3"]) == "1 2"  # whitespace-normalised
    with pytest.raises(ValueError):
        majority_vote([])


def test_exact_match():
    assert exact_match(" n1  n2\tn3\n", "n1 n2 n3")
    assert not exact_match("n1 n2", "n1 n2 n3")
    assert not exact_match("n12", "n1 2")
    assert exact_match("", "   ")
