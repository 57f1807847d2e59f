"""Shared fixtures: a tiny base model (built, not trained) and three SIFT finetunes of it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

TASKS = {
    "add": {"task": "arithmetic", "params": {"digits": 2}},
    "mul": {"task": "arithmetic", "params": {"digits": 2, "op": "mul"}},
    "rev": {"task": "arithmetic", "params": {"digits": 2, "reverse_answer": True}},
}


def source_override(source: dict[str, Any]) -> str:
    params = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in source["params"].items())
    return (f"data.sources=[{{task: {source['task']}, params: {{{params}}}, num_train: 128, num_validation: 8, "
            "num_test: 8}]")


def task_overrides(base: Path, out: Path, name: str, seed: int, cache: Path) -> list[str]:
    from litplug.testing import TINY_OVERRIDES

    return [*TINY_OVERRIDES, f"run.output_dir={out}", f"run.name={name}", f"run.seed={seed}",
            f"data.cache_dir={cache}", f"model.path={base}", f"data.tokenizer={base}", "eval.num_examples=2",
            source_override(TASKS[name.split("-")[0]]), "plugins.sift_masks={sign_seed: 0}"]


def make_base(target: Path, seed: int = 0) -> Path:
    """A random tiny Llama with a tokenizer covering every task, saved as a plain HF directory."""
    import torch
    from omegaconf import OmegaConf

    from litplug.api import ModelConfig, build_model, export_hf, get_task, word_tokenizer

    words: list[str] = []
    for source in TASKS.values():
        words += get_task(source["task"], source["params"]).vocab()
    tokenizer = word_tokenizer(words)
    torch.manual_seed(seed)
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"hidden_size": 32, "num_attention_heads": 2,
                                                              "intermediate_size": 64, "max_position_embeddings": 64})
    return export_hf(build_model(cfg, tokenizer), tokenizer, target)


@pytest.fixture(scope="session")
def make_sift_base() -> Callable[[Path, int], Path]:
    return make_base


@pytest.fixture(scope="session")
def sift_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_base(tmp_path_factory.mktemp("sift-base") / "base")


@pytest.fixture(scope="session")
def train_sift_task(sift_base: Path, litplug_data_cache: Path) -> Callable[..., Path]:
    """``train_sift_task(out_dir, "add", seed, *extra_overrides)``: a SIFT finetune of the base (4 steps)."""
    from litplug_sift_masks.runs import train_task

    def _train(out: Path, name: str, seed: int, *extra: str) -> Path:
        return train_task(None, [*task_overrides(sift_base, out, name, seed, litplug_data_cache), *extra])

    return _train


@pytest.fixture(scope="session")
def sift_runs(tmp_path_factory: pytest.TempPathFactory, sift_base: Path,
              train_sift_task: Callable[..., Path]) -> dict[str, Path]:
    """``base`` (HF dir) and the run dirs ``add``, ``mul``, ``rev`` trained with sift_masks."""
    root = tmp_path_factory.mktemp("sift-runs")
    runs = {"base": sift_base}
    for seed, name in enumerate(TASKS, start=1):
        runs[name] = train_sift_task(root, name, seed)
    return runs
