"""A few real training steps per architecture through `litplug train`'s own path, and the export
reloads with identical logits. The representative set runs in `make test`; every checked
architecture runs under `make test-slow` (marker ``slow``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from litplug.testing import run_training
from litplug.tiny_models import NOT_TRAINED, REPRESENTATIVE, checked_architectures, tiny_model_overrides

ALL = [pytest.param(a, marks=[] if a in REPRESENTATIVE else [pytest.mark.slow])
       for a in checked_architectures() if a not in NOT_TRAINED]


@pytest.mark.parametrize("architecture", ALL)
def test_trains_and_exports(architecture: str, tmp_path: Path, litplug_data_cache: Path) -> None:
    run: Any = run_training(tmp_path, overrides=tiny_model_overrides(architecture), cache_dir=litplug_data_cache)
    assert run.results["global_step"] == 4
    assert torch.isfinite(torch.tensor(run.results["metrics"]["train/loss"]))
    assert run.module.model.config.model_type == AutoConfig.for_model(architecture).model_type  # gpt-sw3 is gpt2
    reloaded = AutoModelForCausalLM.from_pretrained(run.export_dir, local_files_only=True).eval()
    trained = run.module.model.eval()
    ids = torch.randint(3, trained.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids, use_cache=False).logits,
                                   trained(input_ids=ids, use_cache=False).logits, rtol=0, atol=0)
