"""Evaluation metrics for sampled generations: pass@k, majority vote and exact match.

pass@k uses the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained on
Code"): from n samples of which c are correct, the chance that at least one of k samples drawn without
replacement is correct. The product form avoids the huge binomials of the direct formula.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Sequence


def _as_int(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) for ``n`` samples with ``c`` correct.

    Computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i), which is exact in real arithmetic and stays
    numerically stable for large n. Raises ValueError unless 0 <= c <= n and 1 <= k <= n.
    """
    n, c, k = _as_int("n", n), _as_int("c", c), _as_int("k", k)
    if n < 0 or c < 0 or k < 0:
        raise ValueError(f"pass_at_k needs non-negative n, c, k; got n={n}, c={c}, k={k}")
    if k < 1:
        raise ValueError(f"pass_at_k needs k >= 1, got k={k}")
    if k > n:
        raise ValueError(f"pass_at_k needs k <= n (cannot pick {k} of {n} samples); got n={n}, k={k}")
    if c > n:
        raise ValueError(f"pass_at_k needs c <= n (more correct samples than samples); got n={n}, c={c}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float:
    """Mean pass@k over problems, each given as (n samples, c correct)."""
    if len(counts) == 0:
        raise ValueError("mean_pass_at_k needs at least one (n, c) pair")
    return sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def majority_vote(samples: Sequence[str]) -> str:
    """The most common answer (self-consistency voting), compared whitespace-normalised; ties go to the
    answer that occurred first. Returns the normalised answer."""
    if len(samples) == 0:
        raise ValueError("majority_vote needs at least one sample")
    normalised = [_normalise(s) for s in samples]
    counts = Counter(normalised)
    best = max(counts.values())
    return next(s for s in normalised if counts[s] == best)


def exact_match(pred: str, ref: str) -> bool:
    """Whether prediction and reference are the same token sequence (whitespace-normalised)."""
    return _normalise(pred) == _normalise(ref)


__all__ = ["exact_match", "majority_vote", "mean_pass_at_k", "pass_at_k"]
