"""The α sweep: interpolate at each α with the same streaming merge ``litplug merge wise-ft`` uses,
load the result with plain transformers, and score it by sampling (same seed for every α, so the
curve compares models under common random numbers rather than under fresh sampling noise)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
import torch
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM
from transformers.utils import logging as hf_logging

from litplug.api import (
    ConfigError,
    DataError,
    SourceSpec,
    TaskError,
    get_task,
    has_answers,
    load_tokenizer,
    read_examples,
    source_name,
)
from litplug_wise_ft.compat import check_compatible
from litplug_wise_ft.interpolate import DEFAULT_MAX_SHARD_SIZE, check_output, interpolate_dirs
from litplug_wise_ft.report import best_by_metric, write_reports
from litplug_wise_ft.scoring import score_model

ALPHA_DIGITS = 10  # α values are rounded so that 0:1:0.1 gives 0.3, not 0.30000000000000004


def parse_alphas(text: str) -> list[float]:
    """``start:stop:step`` (both ends included) or a comma list ``0,0.3,0.5,1``."""
    try:
        if ":" in text:
            start, stop, step = (float(p) for p in text.split(":"))
            if not step > 0 or stop < start:
                raise ValueError
            count = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, ALPHA_DIGITS) for i in range(count)]
        else:
            values = [round(float(p), ALPHA_DIGITS) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--alphas '{text}' is not START:STOP:STEP (STEP > 0, STOP >= START) or a comma "
                          "list such as 0,0.3,0.5,1.") from None
    if not values or any(math.isnan(v) for v in values):
        raise ConfigError(f"--alphas '{text}' gives no α values.")
    return sorted(set(values))


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise ConfigError(f"--k '{text}' must be a comma list of integers such as 1,4,16.") from None
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k '{text}' needs positive integers such as 1,4,16.")
    return ks


@dataclass
class EvalTarget:
    """What the sweep scores: a prompt/answer source, the plugins that shape generation, the data seed."""

    spec: SourceSpec
    hooks: pluggy.PluginManager  # the plugins that shape generation (``litplug.api.plugin_manager``)
    data_seed: int
    config_path: str | None = None


def _run_config_of(late: Path) -> Path | None:
    """A litplug run keeps its config beside ``export/``; the late model usually is ``<run>/export``."""
    candidate = late.resolve().parent / "config.yaml"
    return candidate if candidate.is_file() else None


def resolve_target(task: str, task_params: dict[str, Any] | None, config: str | None, late: Path) -> EvalTarget:
    """Find the task: in ``--config`` (default: the late model's run config, when there is one) by
    source name or task name, with its parameters and the run's plugins; else the named task with
    ``task_params``. Explicit ``task_params`` override the config's."""
    from litplug.api import load_config, plugin_manager, source_specs

    config_path = Path(config) if config else _run_config_of(late)
    cfg: DictConfig | None = load_config(str(config_path), []) if config_path else None
    spec = None
    if cfg is not None:
        matches = [s for s in source_specs(cfg) if source_name(s) == task or s.task == task]
        spec = matches[0] if matches else None
        if spec is None and config:
            names = ", ".join(source_name(s) for s in source_specs(cfg))
            raise ConfigError(f"--eval '{task}' is not a data source of --config '{config}' (sources: {names}).")
    if spec is None:
        if cfg is not None:
            print(f"note: --eval '{task}' is not a data source of {config_path}; using the task's default "
                  "parameters (set them with --task-params).", flush=True)
        spec = SourceSpec(task=task)
    if task_params:
        spec.params = {**dict(spec.params or {}), **task_params}
    if not spec.task:
        raise ConfigError(f"--eval '{task}' is a file source; the sweep scores synthetic tasks only.")
    try:
        get_task(spec.task, dict(spec.params))
    except TaskError as exc:
        raise ConfigError(f"--eval: {exc}") from None
    if not has_answers(spec):
        raise ConfigError(f"--eval '{task}' has no prompt/answer form, so pass@k cannot be scored on it.")
    # the run's plugins shape generation; without a run config, the core alone (a config enabling no plugin)
    hooks = plugin_manager(cfg if cfg is not None else load_config(None, []))
    return EvalTarget(spec, hooks, int(cfg.data.seed) if cfg is not None else 1234,
                      str(config_path) if config_path else None)


@dataclass
class SweepSpec:
    early: Path
    late: Path
    out: Path
    alphas: list[float]
    target: EvalTarget
    n: int = 16
    ks: list[int] = field(default_factory=lambda: [1, 4, 16])
    temperature: float = 1.0
    num_examples: int = 64
    split: str = "test"
    seed: int = 0
    batch_size: int = 16
    max_new_tokens: int | None = None
    device: str = "auto"
    keep_models: bool = False
    overwrite: bool = False
    select: str | None = None  # metric that picks the headline best α; default pass@max(k)
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE


def check_sweep(s: SweepSpec) -> None:
    if s.n < 2:
        raise ConfigError(f"--n {s.n}: pass@k needs at least 2 samples per prompt.")
    if s.ks[-1] > s.n:
        raise ConfigError(f"--k has k={s.ks[-1]} but pass@k needs k <= --n = {s.n}.")
    if s.temperature <= 0:
        raise ConfigError(f"--temperature must be positive (got {s.temperature}).")
    if s.num_examples < 1 or s.batch_size < 1:
        raise ConfigError("--num-examples and --batch-size must be at least 1.")
    metrics = [f"pass@{k}" for k in s.ks] + ["majority_vote", "greedy"]
    if s.select is not None and s.select not in metrics:
        raise ConfigError(f"--select '{s.select}' is not a swept metric ({', '.join(metrics)}).")
    if s.device != "auto" and not s.device.startswith(("cpu", "cuda")):
        raise ConfigError(f"--device must be auto, cpu or cuda[:N] (got '{s.device}').")


def run_sweep(s: SweepSpec) -> dict[str, Any]:
    """Score every α and write ``sweep.json``, ``sweep.md``, ``sweep.png`` into ``s.out`` (atomically)."""
    from litplug.api import atomic_directory

    check_sweep(s)
    check_output(s.out, s.overwrite, s.early, s.late)
    check_compatible(s.early, s.late)
    try:
        examples = read_examples(s.target.spec, s.split, s.target.data_seed)[: s.num_examples]
    except DataError as exc:
        raise ConfigError(f"--eval: {exc}") from None
    if len(examples) < s.num_examples:  # never score fewer prompts than asked for without saying so
        raise ConfigError(f"--num-examples {s.num_examples}: the {s.split} split of '{source_name(s.target.spec)}' "
                          f"has only {len(examples)} examples (num_{s.split} in the run config "
                          f"{s.target.config_path or '(none)'}); raise it there, or ask for fewer.")
    tokenizer = load_tokenizer(str(s.late))
    hf_logging.disable_progress_bar()  # one line per α is the progress report
    device = ("cuda" if torch.cuda.is_available() else "cpu") if s.device == "auto" else s.device
    rows = []
    with atomic_directory(s.out, overwrite=s.overwrite) as tmp:
        for alpha in s.alphas:
            model_dir = tmp / "models" / f"alpha_{alpha:g}"
            interpolate_dirs(s.early, s.late, alpha, model_dir, max_shard_size=s.max_shard_size)
            model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, dtype=torch.float32)
            scores = score_model(model.to(device), tokenizer, s.target.hooks, examples, s.n, s.ks, s.temperature,
                                 s.seed, s.batch_size, s.max_new_tokens)
            del model
            if not s.keep_models:
                shutil.rmtree(model_dir)
            rows.append({"alpha": alpha, **scores})
            print(f"wise-ft sweep: alpha={alpha:g} " + " ".join(f"{k}={v:.3f}" for k, v in scores.items()),
                  flush=True)
        if not s.keep_models:
            shutil.rmtree(tmp / "models", ignore_errors=True)
        select = s.select or f"pass@{s.ks[-1]}"
        result = {
            "method": "wise-ft", "early": str(s.early.resolve()), "late": str(s.late.resolve()),
            "task": source_name(s.target.spec), "task_params": dict(s.target.spec.params or {}),
            "config": s.target.config_path, "split": s.split, "num_examples": len(examples), "n": s.n, "k": s.ks,
            "temperature": s.temperature, "seed": s.seed, "alphas": s.alphas, "rows": rows,
            "best": best_by_metric(rows), "select": select,
        }
        result["best_alpha"] = result["best"][select]["alpha"]
        write_reports(result, tmp)
    return result
