"""Task evaluation: exact-match accuracy of greedy answers, and pass@k / majority vote from n samples."""

from __future__ import annotations

from typing import Any

import pluggy
from omegaconf import DictConfig
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from litplug.data.sources import SourceSpec, has_answers, read_examples, source_name
from litplug.errors import ConfigError
from litplug.generate import generate
from litplug.metrics import exact_match, majority_vote, mean_pass_at_k


def check_eval_config(cfg: DictConfig) -> None:
    e = cfg.eval
    if e.n < 1:
        raise ConfigError(f"Config key 'eval.n' must be at least 1 (got {e.n}).")
    for k in e.k:
        if not 1 <= k <= e.n:
            raise ConfigError(f"Config key 'eval.k' has k={k}, but pass@k needs 1 <= k <= eval.n = {e.n}.")
    if e.split not in ("train", "validation", "test"):
        raise ConfigError(f"Config key 'eval.split' must be train, validation or test (got '{e.split}').")


def evaluate_source(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                    pm: pluggy.PluginManager | pluggy.HookRelay, spec: SourceSpec, cfg: DictConfig) -> dict[str, Any]:
    """Metrics for one prompt/answer source on ``eval.split``: exact match (greedy), and with
    ``eval.n > 1`` pass@k for every k in ``eval.k`` plus majority-vote accuracy."""
    e = cfg.eval
    examples = read_examples(spec, e.split, cfg.data.seed)[: e.num_examples]
    prompts = [ex.prompt for ex in examples]
    answers = [ex.answer for ex in examples]
    max_new = e.max_new_tokens or max(len(tokenizer.encode(a, add_special_tokens=False)) for a in answers) + 1
    greedy = generate(model, tokenizer, prompts, pm, max_new, batch_size=e.batch_size, seed=cfg.run.seed)
    result: dict[str, Any] = {
        "num_examples": len(examples),
        "exact_match": sum(exact_match(g[0], a) for g, a in zip(greedy, answers)) / len(examples),
        "samples": [{"prompt": p, "answer": a, "greedy": g[0]} for p, a, g in list(zip(prompts, answers, greedy))[:5]],
    }
    if e.n > 1:
        sampled = generate(model, tokenizer, prompts, pm, max_new, num_samples=e.n, temperature=e.temperature,
                           batch_size=max(1, e.batch_size // e.n), seed=cfg.run.seed)
        counts = [(e.n, sum(exact_match(s, a) for s in samples)) for samples, a in zip(sampled, answers)]
        for k in e.k:
            result[f"pass@{k}"] = mean_pass_at_k(counts, k)
        result["majority_vote"] = sum(exact_match(majority_vote(s), a) for s, a in zip(sampled, answers)) / len(answers)
    return result


def evaluate_all(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 pm: pluggy.PluginManager | pluggy.HookRelay, sources: list[SourceSpec],
                 cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """Every source that has a prompt/answer form; sources without one are skipped."""
    return {source_name(s): evaluate_source(model, tokenizer, pm, s, cfg) for s in sources if has_answers(s)}


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """MLflow metric names (which may not contain '@': pass@4 is logged as pass_at_4)."""
    return {f"eval/{src}/{k.replace('@', '_at_')}": float(v) for src, res in results.items()
            for k, v in res.items() if isinstance(v, (int, float))}


def eval_summary_markdown(results: dict[str, dict[str, Any]], run_name: str, step: int, split: str) -> str:
    """The evaluation at a glance, for a person (``eval_summary.md``): each task's metrics, then its sample
    prompts with the model's greedy answer beside the reference."""
    lines = [f"# Evaluation of run '{run_name}' at step {step} ({split} split)", "",
             "| task | examples | metric | value |", "|---|---|---|---|"]
    for source, res in results.items():
        for key, value in res.items():
            if isinstance(value, float) and key != "num_examples":
                lines.append(f"| {source} | {res['num_examples']} | {key} | {value:.4f} |")
    for source, res in results.items():
        lines += ["", f"## {source}: sample answers (greedy)", "", "| prompt | reference | model | right? |",
                  "|---|---|---|---|"]
        for s in res.get("samples", []):
            cells = [str(s[k]).replace("|", "\\|") for k in ("prompt", "answer", "greedy")]
            lines.append(f"| {' | '.join(cells)} | {'yes' if exact_match(s['greedy'], s['answer']) else 'no'} |")
    return "\n".join(lines) + "\n"
