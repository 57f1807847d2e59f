"""S2D inside a litplug run: conformance, lambda=0, amortisation, and bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from litplug_s2d.plugin import S2DPlugin

from litplug.api import ConfigError, load_config, plugin_manager
from litplug.testing import TINY_OVERRIDES, cli, plugin_overrides, state_equal

# The conformance settings (S2DPlugin.conformance, run by litplug's harness): tau low enough that layers
# of the tiny model are selected, m small enough that a 4-step run refreshes twice (steps 0 and 3).
ACTIVE = S2DPlugin.conformance[0]["config"]


def test_conformance_settings_are_the_active_ones() -> None:
    assert ACTIVE == {"lam": 0.05, "tau": 0.05, "refresh_every": 3}


def test_lambda_zero_is_bit_identical_to_no_plugin(litplug_run: Callable[..., Any]) -> None:
    plain = litplug_run(None, name="plain")
    zero = litplug_run({"s2d": {**ACTIVE, "lam": 0.0, "selection": "pcdr", "refresh_every": 2}}, name="zero")
    assert any(k > 0 for k in zero.module.aux["s2d"].k_targets), "the penalty path must be exercised"
    diff = state_equal(plain.module.model.state_dict(), zero.module.model.state_dict())
    assert not diff, f"lambda=0 changed {diff[:5]}"
    assert zero.results["metrics"]["train/lm"] == plain.results["metrics"]["train/lm"]


def test_svd_runs_ceil_steps_over_m_times_and_the_penalty_is_a_logged_term(
        litplug_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import litplug_s2d.regularizer as regularizer

    calls = []
    real = regularizer.top_components

    def counting(matrix: torch.Tensor, k: int) -> Any:
        calls.append(matrix.shape)
        return real(matrix, k)

    monkeypatch.setattr(regularizer, "top_components", counting)
    # the spectral rule at tau=0.05 selects every layer of the tiny model at every refresh (PCDR, the default, varies)
    run = litplug_run({"s2d": {**ACTIVE, "refresh_every": 2, "selection": "sigma_mass"}}, ["trainer.max_steps=5"])
    decay = run.module.aux["s2d"]
    assert int(decay.refreshes) == 3  # steps 0, 2, 4 of 5 = ceil(5 / 2)
    assert len(calls) == 3 * len(decay.names)
    assert sum(k > 0 for k in decay.k_targets) == len(decay.names) == 14  # 7 linear layers x 2 blocks
    metrics = run.results["metrics"]
    assert metrics["train/s2d"] > 0 and metrics["train/s2d_selected_layers"] == 14
    assert metrics["train/loss"] == pytest.approx(metrics["train/lm"] + metrics["train/s2d"], rel=1e-6)


@pytest.mark.parametrize(("option", "message"), [
    ("tau=0", "tau must be in"), ("tau=1.5", "tau must be in"), ("k_max=0", "k_max must be at least 1"),
    ("refresh_every=0", "refresh_every"), ("power=0", "power"), ("selection=svd", "selection must be one of"),
    ("lam=-1", "lam must be"),
])
def test_bad_options_are_config_errors(option: str, message: str) -> None:
    cfg = load_config(None, [*plugin_overrides({"s2d": {}}), f"plugins.s2d.{option}"])
    with pytest.raises(ConfigError, match=rf"plugins\.s2d.*{message}"):
        plugin_manager(cfg)


def test_power_at_most_one_warns_that_the_decay_is_not_selective() -> None:
    cfg = load_config(None, [*plugin_overrides({"s2d": {"power": 1.0}})])
    with pytest.warns(UserWarning, match="no longer selective"):
        plugin_manager(cfg)


def test_bad_option_and_unmatched_layer_pattern_exit_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", "data.cache_dir=" + str(tmp_path / "cache")]
    assert cli([*base, "plugins.s2d={tau: 2}"]) == 2
    assert "plugins.s2d" in capsys.readouterr().err
    assert cli([*base, "plugins.s2d={layers: ['*.mlp.*', '*.no_such_proj']}"]) == 2
    err = capsys.readouterr().err
    assert "plugins.s2d.layers" in err and "'*.no_such_proj' matches no linear layer" in err
    assert not (tmp_path / "run").exists(), "a failed start must not leave a run directory behind"
