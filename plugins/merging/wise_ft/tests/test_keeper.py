"""The early-checkpoint keeper: exact exports, best-step choice, resume, no effect on training.

The conformance suite runs in the core's harness with ``WiseFTPlugin.conformance`` (``KEEPER``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_wise_ft.plugin import WiseFTPlugin
from safetensors.torch import load_file

from litplug.api import ConfigError
from litplug.testing import TINY_OVERRIDES, run_training, state_equal

KEEPER = {"keep_steps": [0, 2, 4], "score_every_n_steps": 2, "score_n": 4, "score_k": [1, 2],
          "score_num_examples": 4, "select_metric": "pass@2", "select_min_step": 0, "select_max_step": 2}


def test_the_conformance_settings_are_the_keeper_tested_here() -> None:
    assert WiseFTPlugin.conformance == ({"config": KEEPER, "overrides": ()},)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run with the keeper (every checkpoint kept), one without any plugin, one resumed from step 2."""
    from litplug.api import setup_run

    root = tmp_path_factory.mktemp("keeper")
    cache = tmp_path_factory.mktemp("keeper-cache")
    keep = ["trainer.keep_checkpoints=true"]
    # Tokenise the data first: a run that builds the data cache starts from different random weights
    # than one that finds it (the core seeds before preparing data), which is not what is tested here.
    setup_run(None, [*TINY_OVERRIDES, f"run.output_dir={root}", f"data.cache_dir={cache}"])
    full = run_training(root, {"wise_ft": KEEPER}, keep, cache_dir=cache, name="full")
    plain = run_training(root, None, keep, cache_dir=cache, name="plain")
    (root / "resumed" / "checkpoints").mkdir(parents=True)
    shutil.copy(full.run_dir / "checkpoints" / "step=2.ckpt", root / "resumed" / "checkpoints" / "last.ckpt")
    resumed = run_training(root, {"wise_ft": KEEPER}, keep, cache_dir=cache, name="resumed")
    return {"full": full, "plain": plain, "resumed": resumed}


def selection(run: Any) -> dict[str, Any]:
    return json.loads((run.run_dir / "wise_ft" / "selection.json").read_text())


def test_kept_steps_equal_the_trained_weights_at_that_step(runs: dict[str, Any]) -> None:
    run = runs["full"]
    kept = run.run_dir / "wise_ft"
    ckpt = torch.load(run.run_dir / "checkpoints" / "step=2.ckpt", map_location="cpu", weights_only=False)
    at_step_2 = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    exported = load_file(kept / "step_2" / "model.safetensors")
    assert exported.keys() <= at_step_2.keys()
    assert all(torch.equal(exported[k], at_step_2[k]) for k in exported)
    final = load_file(run.export_dir / "model.safetensors")
    assert not state_equal(load_file(kept / "step_4" / "model.safetensors"), final)
    assert state_equal(load_file(kept / "step_0" / "model.safetensors"), exported)  # the start differs
    assert (kept / "step_0" / "tokenizer.json").is_file()


def test_best_is_the_argmax_of_the_scored_history(runs: dict[str, Any]) -> None:
    run = runs["full"]
    sel = selection(run)
    assert [h["step"] for h in sel["history"]] == [0, 2, 4]
    early = [h for h in sel["history"] if h["step"] <= 2]  # select_max_step bounds the window
    best = max(early, key=lambda h: (h["pass@2"], -h["step"]))
    assert sel["best"] == {"step": best["step"], "metric": "pass@2", "value": best["pass@2"]}
    kept = run.run_dir / "wise_ft"
    best_weights = load_file(kept / "best" / "model.safetensors")
    assert not state_equal(best_weights, load_file(kept / f"step_{best['step']}" / "model.safetensors"))
    assert sel["kept_steps"] == [0, 2, 4]


def test_keeping_and_scoring_do_not_change_training(runs: dict[str, Any]) -> None:
    """Sampling reseeds torch and switches the model to eval mode; neither may leak into training."""
    diff = state_equal(runs["full"].module.state_dict(), runs["plain"].module.state_dict())
    assert not diff, diff[:5]
    assert runs["full"].module.model.training == runs["plain"].module.model.training


def test_resumed_run_keeps_the_scores_and_picks_the_same_best(runs: dict[str, Any]) -> None:
    full, resumed = selection(runs["full"]), selection(runs["resumed"])
    assert resumed["history"] == full["history"]
    assert resumed["best"] == full["best"]


def test_keep_step_after_the_last_step_exits_2_and_leaves_no_run(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from litplug.testing import cli as main
    from litplug.testing import plugin_overrides

    config = tmp_path / "config.yaml"
    config.write_text("run: {name: bad}\n")
    overrides = [*TINY_OVERRIDES, f"run.output_dir={tmp_path}", *plugin_overrides({"wise_ft": {"keep_steps": [2, 99]}})]
    assert main(["train", str(config), *overrides]) == 2
    assert "plugins.wise_ft.keep_steps" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_unknown_score_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="score_source 'nope'"):
        run_training(tmp_path, {"wise_ft": {**KEEPER, "score_source": "nope"}})


@pytest.mark.parametrize("options,key", [
    ({"select_metric": "pass@16"}, "select_metric"),
    ({"score_k": [1, 32]}, "score_k"),
    ({"keep_steps": [-1]}, "keep_steps"),
    ({"score_split": "dev"}, "score_split"),
    ({"output_subdir": "../elsewhere"}, "output_subdir"),
    ({"select_min_step": 3, "select_max_step": 2}, "select_max_step"),
])
def test_bad_options_are_config_errors(options: dict[str, Any], key: str) -> None:
    from litplug.api import load_config, plugin_manager
    from litplug.testing import plugin_overrides

    with pytest.raises(ConfigError, match=key):
        plugin_manager(load_config(None, plugin_overrides({"wise_ft": options})))


def test_best_is_chosen_inside_the_early_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted scores: the global peak (step 30) is outside [select_min_step, select_max_step] = [10, 20]."""
    from types import SimpleNamespace

    import litplug_wise_ft.keeper as keeper_mod
    from litplug_wise_ft.config import WiseFTConfig

    from litplug.api import SourceSpec

    scripted = {0: 0.9, 10: 0.5, 20: 0.6, 30: 0.95, 40: 0.4}
    step_now = {"step": 0}
    monkeypatch.setattr(keeper_mod, "score_model", lambda *a, **k: {"pass@1": 0.1, "pass@4": scripted[step_now["step"]],
                                                                     "majority_vote": 0.0, "greedy": 0.0,
                                                                     "var_rho": 0.0})
    exported: list[tuple[int, str]] = []
    cfg = WiseFTConfig(score_every_n_steps=10, score_k=[1, 4], select_metric="pass@4", select_min_step=10,
                       select_max_step=20)
    config = SimpleNamespace(data=SimpleNamespace(seed=0), run=SimpleNamespace(seed=0, output_dir=tmp_path, name="run"))
    keeper = keeper_mod.EarlyCheckpointKeeper(cfg, config)
    monkeypatch.setattr(keeper, "_export", lambda module, target: exported.append((step_now["step"], target.name)))
    trainer = SimpleNamespace(is_global_zero=True, loggers=[],
                              datamodule=SimpleNamespace(sources=[SourceSpec(task="arithmetic")]))
    module = SimpleNamespace(model=torch.nn.Linear(1, 1), tokenizer=None, hooks=None, config=config)
    monkeypatch.setattr(keeper_mod, "context", lambda pl_module: pl_module)  # the module stands in for its context
    for step in scripted:
        step_now["step"] = step
        keeper._at_step(trainer, module, step)  # type: ignore[arg-type]
        keeper._at_step(trainer, module, step)  # a second batch ending at the same step does nothing
    assert [h["step"] for h in keeper.history] == [0, 10, 20, 30, 40]
    assert keeper.best == {"step": 20, "metric": "pass@4", "value": 0.6}
    assert exported == [(10, "best"), (20, "best")]
    saved = json.loads((tmp_path / "run" / "wise_ft" / "selection.json").read_text())
    assert saved["best"]["step"] == 20 and len(saved["history"]) == 5
