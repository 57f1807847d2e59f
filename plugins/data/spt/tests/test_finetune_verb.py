"""``litplug spt finetune``: one finetune per LR, the LR chosen on the validation loss, the chosen run's
test metrics (and the pretraining run's, under pretrain/) in OUT/results.json; and the reproduction's
pretraining config compares its snapshots like with like (constant LR)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml
from litplug_spt.cli import add_commands

from .conftest import PAIR

REPRODUCE = Path(__file__).resolve().parents[1] / "reproduce"


def run_verb(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, litplug_data_cache):
    from litplug.testing import run_training

    out = tmp_path_factory.mktemp("pretrain")
    return run_training(out, {"spt": {"delta": 0.25}}, [*PAIR, "trainer.max_steps=6"], cache_dir=litplug_data_cache)


def test_lr_is_chosen_on_validation_and_its_test_metrics_reported(pretrained, tmp_path, litplug_data_cache) -> None:
    from litplug.testing import TINY_OVERRIDES

    config = tmp_path / "ft.yaml"
    config.write_text("plugins:\n  spt: {delta: 1.0, early_stopping: true, patience: 2}\n")
    lrs = ["1e-4", "3e-2", "0.3"]
    out = tmp_path / "ft"
    common = [f"--set={o}" for o in [*TINY_OVERRIDES, *PAIR, "trainer.max_steps=6", "trainer.val_check_interval=1",
                                     "optim.schedule=constant", f"data.cache_dir={litplug_data_cache}"]]
    argv = ["spt", "finetune", str(config), "--model", str(pretrained.export_dir), "--pretrain",
            str(pretrained.run_dir), *[f"--lr={lr}" for lr in lrs], "--out", str(out), *common]
    assert run_verb(argv) == 0
    runs = {float(lr): json.loads((out / f"lr={float(lr):g}" / "results.json").read_text())["metrics"] for lr in lrs}
    val = {lr: m["spt/best_val_loss"] for lr, m in runs.items()}
    assert len(set(val.values())) == len(lrs), "the LRs must give different validation losses to test the choice"
    best = min(val, key=val.get)
    report = json.loads((out / "results.json").read_text())["metrics"]
    assert report["spt/ft_lr"] == best
    assert report["spt/ft_lr_index"] == [float(lr) for lr in lrs].index(best)
    assert report["test/domain/loss"] == runs[best]["test/domain/loss"]  # the test split, of the chosen run
    assert report["spt/best_step"] == runs[best]["spt/best_step"]
    assert report["pretrain/test/domain/loss"] == pretrained.results["metrics"]["test/domain/loss"]
    # a re-run (a resumed sweep cell) trains nothing again and writes the same choice
    stamps = {lr: (out / f"lr={lr:g}" / "results.json").stat().st_mtime_ns for lr in runs}
    assert run_verb(argv) == 0
    assert stamps == {lr: (out / f"lr={lr:g}" / "results.json").stat().st_mtime_ns for lr in runs}
    assert json.loads((out / "results.json").read_text())["metrics"] == report


def test_finetune_without_early_stopping_is_refused() -> None:
    from litplug_spt.finetune import choose

    from litplug.api import ConfigError

    with pytest.raises(ConfigError, match="early_stopping"):
        choose({1e-3: {"test/domain/loss": 1.0}})


def test_reproduction_pretrains_at_constant_lr_and_finetunes_existing_snapshots() -> None:
    """The snapshots the sweep finetunes from are un-annealed exactly like the final export: the core's
    constant schedule holds the LR fixed after warmup, and every snapshot step is past the warmup."""
    from litplug.api import load_config

    config = load_config(str(REPRODUCE / "spt_pretrain.yaml"), [])
    assert config.optim.schedule == "constant"
    snapshots = list(config.plugins.spt.snapshot_steps)
    assert snapshots and all(config.optim.warmup_steps < s < config.trainer.max_steps for s in snapshots)
    sweep = yaml.safe_load((REPRODUCE / "sweep.yaml").read_text())
    stages = {s["name"]: s for s in sweep["stages"]}
    assert {int(s) for s in stages["curve"]["grid"]["step"]} <= set(snapshots)
    assert [float(x) for x in stages["pretrain"]["grid"]["plugins.spt.delta"]][:1] == [0.0]  # NPT is swept
    for stage in ("finetune", "curve"):
        args = stages[stage]["args"]
        assert [float(args[i + 1]) for i, a in enumerate(args) if a == "--lr"] == [1e-3, 3e-3, 1e-2]
