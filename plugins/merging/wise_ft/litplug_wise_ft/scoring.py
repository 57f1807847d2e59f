"""pass@k, majority vote and the bias–variance terms of pass@k, from n sampled answers per prompt.

Reuses the core's generation (so plugins' prompt changes and logits processors apply) and metrics.
Unlike ``litplug.evaluate`` it keeps the per-problem correct counts c_x, which give the spread of the
per-problem solve rate ρ_x that WiSE-FT is about (METHODS.md §5):
``1 − pass@2 = (1 − pass@1)² + Var_x(ρ_x)`` holds exactly for the unbiased estimators used here.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from litplug.api import Example, exact_match, generate, majority_vote, mean_pass_at_k


def mlflow_key(name: str) -> str:
    """MLflow metric names may not contain '@': ``pass@8`` is logged as ``pass_at_8``."""
    return name.replace("@", "_at_")


def rho_variance(counts: list[tuple[int, int]]) -> float:
    """Unbiased estimate of Var_x(ρ_x) from (n, c) per problem: E[ρ²] is estimated by c(c−1)/(n(n−1))
    (unbiased for a binomial), E[ρ] by c/n. Needs n ≥ 2."""
    mean = sum(c / n for n, c in counts) / len(counts)
    second = sum(c * (c - 1) / (n * (n - 1)) for n, c in counts) / len(counts)
    return second - mean * mean


def score_samples(samples: list[list[str]], greedy: list[str], answers: list[str], ks: list[int]) -> dict[str, float]:
    """Metrics from decoded answers: ``pass@k`` per k, ``majority_vote``, ``greedy`` exact match,
    ``var_rho`` (the variance term of pass@k)."""
    counts = [(len(s), sum(exact_match(x, a) for x in s)) for s, a in zip(samples, answers)]
    result = {f"pass@{k}": mean_pass_at_k(counts, k) for k in sorted(ks)}
    result["majority_vote"] = sum(exact_match(majority_vote(s), a) for s, a in zip(samples, answers)) / len(answers)
    result["greedy"] = sum(exact_match(g, a) for g, a in zip(greedy, answers)) / len(answers)
    result["var_rho"] = rho_variance(counts)
    return result


def score_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, hooks: Any,
                examples: list[Example], n: int, ks: list[int], temperature: float, seed: int,
                batch_size: int = 16, max_new_tokens: int | None = None) -> dict[str, float]:
    """Sample ``n`` answers per prompt (and one greedy answer) and score them.

    The same ``seed`` gives the same sampling noise, so comparing models (e.g. along an α sweep) uses
    common random numbers. ``batch_size`` counts prompts; each expands to ``n`` sequences. ``hooks``: the
    run's hooks (``ctx.hooks``) or a plugin manager (``litplug.api.plugin_manager``), for ``generate``.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 samples per prompt (got {n}); n = 1 would be greedy decoding.")
    prompts = [ex.prompt for ex in examples]
    answers = [ex.answer for ex in examples]
    max_new = max_new_tokens or max(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers) + 1
    greedy = generate(model, tokenizer, prompts, hooks, max_new, batch_size=batch_size * n, seed=seed)
    sampled = generate(model, tokenizer, prompts, hooks, max_new, num_samples=n, temperature=temperature,
                       batch_size=batch_size, seed=seed)
    return score_samples(sampled, [g[0] for g in greedy], answers, ks)
