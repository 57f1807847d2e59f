"""Shared fixtures: a tokenizer with the pause token, a model sized for it, and one pause-pretrained run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from litplug_pause import PauseConfig, PausePlugin

from litplug.testing import run_training


@pytest.fixture
def pause_tokenizer(tiny_tokenizer: Any) -> Any:
    PausePlugin(PauseConfig()).configure_tokenizer(tokenizer=tiny_tokenizer)
    return tiny_tokenizer


@pytest.fixture
def pause_model(pause_tokenizer: Any) -> Any:
    from omegaconf import OmegaConf

    from litplug.api import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"hidden_size": 32, "num_attention_heads": 2,
                                                              "intermediate_size": 64})
    return build_model(cfg, pause_tokenizer)


@pytest.fixture
def fake_ctx() -> Any:
    """``fake_ctx(tokenizer, step=0, seed=0)``: the parts of the StepContext that transform_batch reads, at
    any step (``litplug.testing.step_context`` is always at step 0, outside a trainer)."""

    def make(tokenizer: Any, step: int = 0, seed: int = 0) -> Any:
        return SimpleNamespace(tokenizer=tokenizer, global_step=step, rank=0,
                               config=SimpleNamespace(run=SimpleNamespace(seed=seed)))

    return make


@pytest.fixture(scope="session")
def pause_pretrained(tmp_path_factory: pytest.TempPathFactory, litplug_data_cache: Path) -> Any:
    """A tiny pause-pretrained run (export/ holds the pause token): the start of the finetuning tests."""
    root = tmp_path_factory.mktemp("pause-pretrained")
    return run_training(root, {"pause": {"mode": "pretrain", "inference_pauses": 2}},
                        cache_dir=litplug_data_cache, name="pt")
