"""Every plugin under every precision, and every pair of plugins together: a run trains, checkpoints and
resumes bit-exactly, or it is refused at start-up with a ConfigError (exit 2) that names the culprits.

The plugins' settings are those of their own conformance tests, so each one is really active.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from litplug.errors import ConfigError
from litplug.testing import run_training, state_equal

SPT_DATA = (
    "data.sources=" + json.dumps([
        {"task": "general", "params": {"length": 15}, "num_train": 400, "num_validation": 16, "num_test": 16},
        {"task": "domain", "params": {"length": 15, "num_documents": 12}, "num_train": 48, "num_validation": 16,
         "num_test": 16},
    ]),
    "data.seq_len=16",
)
PLUGINS: dict[str, dict[str, Any]] = {
    "fsp": {"objective": "bce", "tau": 4, "positions_per_sequence": 3},
    "pause": {"mode": "pretrain", "pretrain_fraction": 0.2, "num_pauses": 2},
    "spt": {"delta": 0.25},
    "s2d": {"lam": 0.05, "tau": 0.05, "refresh_every": 2},
    "wise_ft": {"keep_steps": [0, 2], "score_every_n_steps": 2, "score_n": 2, "score_k": [1],
                "score_num_examples": 4, "select_metric": "pass@1", "select_min_step": 0, "select_max_step": 2},
    "sift_masks": {"sign_seed": 3, "reset_momentum": True},
    "liger": {"chunk_rows": 4},
    "xformers": {},
}
PRECISIONS = ["32-true", "64-true", "bf16-mixed", "bf16-true", "16-mixed"]


def _overrides(names: tuple[str, ...]) -> list[str]:
    return list(SPT_DATA) if "spt" in names else []


def _options(name: str, names: tuple[str, ...]) -> dict[str, Any]:
    if name == "wise_ft" and "spt" in names:  # SPT's text-only data has no prompts to score pass@k on:
        return {"keep_steps": [0, 2]}  # keep early checkpoints only (scoring there is refused, tested below)
    return PLUGINS[name]


def _train(tmp: Path, cache: Path, names: tuple[str, ...], extra: list[str], name: str = "run") -> Any:
    plugins = {n: _options(n, names) for n in names}
    return run_training(tmp, plugins, [*_overrides(names), *extra], cache_dir=cache, name=name)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_precision(plugin: str, precision: str, tmp_path: Path, litplug_data_cache: Path) -> None:
    try:
        run = _train(tmp_path, litplug_data_cache, (plugin,), [f"trainer.precision={precision}", "trainer.max_steps=3"])
    except ConfigError as exc:
        message = str(exc)
        assert precision in message, message
        assert plugin in message or "trainer.precision" in message, message
        assert not (tmp_path / "run").exists(), "a refused run wrote its run directory"
        pytest.skip(f"refused at start-up: {message[:200]}")
    assert run.results["global_step"] == 3
    assert torch.isfinite(torch.tensor(run.results["metrics"]["train/loss"]))


@pytest.mark.parametrize("pair", list(itertools.combinations(sorted(PLUGINS), 2)), ids="+".join)
def test_pair(pair: tuple[str, str], tmp_path: Path, litplug_data_cache: Path) -> None:
    keep = ["trainer.keep_checkpoints=true"]
    try:
        full = _train(tmp_path, litplug_data_cache, pair, keep, name="full")
    except ConfigError as exc:
        message = str(exc)
        assert all(name in message for name in pair), message
        pytest.skip(f"refused at start-up: {message[:200]}")
    assert full.results["global_step"] == 4
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(full.run_dir / "checkpoints" / "step=2.ckpt", resumed_dir / "checkpoints" / "last.ckpt")
    resumed = _train(tmp_path, litplug_data_cache, pair, keep, name="resumed")
    diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
    assert not diff, f"{'+'.join(pair)}: the resumed run differs from the uninterrupted one in {diff[:5]}"
    assert resumed.results["metrics"]["train/loss"] == full.results["metrics"]["train/loss"]


def test_wise_ft_scoring_on_text_only_data_is_refused_naming_the_plugin(tmp_path: Path,
                                                                       litplug_data_cache: Path) -> None:
    with pytest.raises(ConfigError, match="plugins.wise_ft.score_every_n_steps > 0 needs a prompt/answer"):
        run_training(tmp_path, {"spt": PLUGINS["spt"], "wise_ft": PLUGINS["wise_ft"]}, list(SPT_DATA),
                     cache_dir=litplug_data_cache)
    assert not (tmp_path / "run").exists()
