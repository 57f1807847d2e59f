"""Shared data for the SPT tests: a general + domain pair where every training row is exactly one
document (15 words + <bos> + <eos> = data.seq_len + 1 = 17 tokens), so rows can be checked by content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DOC_LENGTH = 15
SEQ_LEN = 16
NUM_DOCUMENTS = 12


def sources(general_train: int = 400, domain_train: int = 48, domain_weight: float = 1.0,
            general_weight: float = 1.0) -> str:
    general = {"task": "general", "params": {"length": DOC_LENGTH}, "num_train": general_train,
               "num_validation": 16, "num_test": 16, "weight": general_weight}
    domain = {"task": "domain", "params": {"length": DOC_LENGTH, "num_documents": NUM_DOCUMENTS},
              "num_train": domain_train, "num_validation": 16, "num_test": 16, "weight": domain_weight}
    return "data.sources=" + json.dumps([general, domain])


PAIR = (sources(), f"data.seq_len={SEQ_LEN}")


def spt(**options: Any) -> str:
    return "plugins.spt=" + json.dumps(options)


@pytest.fixture
def setup_run(tmp_path: Path, litplug_data_cache: Path):
    """``setup_run(overrides)``: a validated run (``litplug.api.setup_run``: data prepared, not trained)."""
    from litplug.api import setup_run as setup
    from litplug.testing import TINY_OVERRIDES

    def _setup(*overrides: str, name: str = "run") -> Any:
        base = [*TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"run.name={name}",
                f"data.cache_dir={litplug_data_cache}"]
        return setup(None, [*base, *PAIR, *overrides])

    return _setup
