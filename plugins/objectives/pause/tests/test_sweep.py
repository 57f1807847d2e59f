"""The method card's sweep: the regime its configs declare, its wiring, and the ``pause-eval`` verb whose
results.json a sweep reports (one group per M_inf, paired with the baseline by seed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from litplug.api import load_config
from litplug.testing import TINY_OVERRIDES, cli

REPRODUCE = Path(__file__).resolve().parents[1] / "reproduce"


def test_configs_declare_the_robustness_regime() -> None:
    pretrain = load_config(str(REPRODUCE / "pause_pretrain.yaml"))
    finetune = load_config(str(REPRODUCE / "pause_finetune.yaml"))
    assert pretrain.trainer.max_steps == 3000
    assert pretrain.plugins.pause.mode == "pretrain" and pretrain.plugins.pause.pretrain_fraction == 0.25
    assert finetune.trainer.max_steps == 300 and finetune.optim.lr == 1.0e-3
    assert finetune.plugins.pause.num_pauses == 10 and finetune.data.loss_on == "answer"


def test_sweep_evaluates_the_m10_finetune_at_each_m_inf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["sweep", str(REPRODUCE / "sweep.yaml"), "--dry-run", f"run.output_dir={tmp_path}",
                "tracking.enabled=false"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("43 cells in 5 stage(s)")
    minf = [line for line in lines if line.startswith("minf/")]
    assert len(minf) == 5 * 4
    for m_inf in (0, 2, 5, 10):
        for seed in range(5):
            name = f"minf/seed={seed}_num_pauses=10_inference_pauses={m_inf}:"
            cell = next(line for line in minf if line.startswith(name))
            assert f"pause-eval {tmp_path}/sweeps/pause_minf/ft/seed={seed}_num_pauses=10 " in cell
            assert f"--inference-pauses {m_inf} " in cell and cell.endswith("/results.json")
    baseline = [line for line in lines if line.startswith("ft/") and "num_pauses=0:" in line]
    assert len(baseline) == 5 and all("plugins.pause.num_pauses=0" in line for line in baseline)
    assert all("pausept/seed=" in line for line in baseline)  # standard finetuning from the same base


def test_pause_eval_results_are_reported_by_a_sweep(tmp_path: Path, litplug_data_cache: Path) -> None:
    finetune = [*TINY_OVERRIDES, f"data.cache_dir={litplug_data_cache}", "data.loss_on=answer",
                "plugins.pause.num_pauses=2"]
    sweep = {"name": "tiny_minf",
             "stages": [{"name": "ft", "config": str(tmp_path / "ft.yaml"), "grid": {"run.seed": [0]},
                         "overrides": finetune},
                        {"name": "minf", "verb": "pause-eval",
                         "grid": {"run.seed": [0], "plugins.pause.inference_pauses": [0, 2]},
                         "args": ["{ft}", "--inference-pauses", "{plugins.pause.inference_pauses}",
                                  "--out", "{dir}/results.json"]}],
             "report": {"stage": ["ft", "minf"], "metrics": ["eval/*/exact_match"], "baseline": {"stage": "ft"}}}
    (tmp_path / "ft.yaml").write_text("plugins:\n  pause: {}\n")
    (tmp_path / "sweep.yaml").write_text(json.dumps(sweep))
    assert cli(["sweep", str(tmp_path / "sweep.yaml"), "--workers", "1", f"run.output_dir={tmp_path / 'runs'}"]) == 0
    sweep_dir = tmp_path / "runs" / "sweeps" / "tiny_minf"
    summary = json.loads((sweep_dir / "summary.json").read_text())
    assert summary["cells_finished"] == summary["cells_expected"] == 3
    metric = "eval/arithmetic/exact_match"
    for m_inf in (0, 2):
        group = f"stage=minf, plugins.pause.inference_pauses={m_inf}"
        assert summary["groups"][group][metric]["n"] == 1
        assert summary["differences"][group][metric]["n"] == 1  # paired with the finetune by seed
        written = json.loads((sweep_dir / "minf" / f"seed=0_inference_pauses={m_inf}" / "results.json").read_text())
        assert written["inference_pauses"] == m_inf and written["metrics"]["eval/arithmetic/num_examples"] == 4
    # at M_inf = M the verb reproduces the run's own end-of-run evaluation
    ft_results = json.loads((sweep_dir / "ft" / "seed=0" / "results.json").read_text())["metrics"]
    assert summary["groups"]["stage=minf, plugins.pause.inference_pauses=2"][metric]["mean"] == ft_results[metric]


def test_pause_eval_matches_litplug_eval_at_the_same_m_inf(pause_pretrained: Any, tmp_path: Path) -> None:
    run_dir = str(pause_pretrained.run_dir)
    assert cli(["eval", run_dir, "plugins.pause.inference_pauses=3", "--out", str(tmp_path / "core.json")]) == 0
    assert cli(["pause-eval", run_dir, "--inference-pauses", "3", "--out", str(tmp_path / "r" / "results.json")]) == 0
    core = json.loads((tmp_path / "core.json").read_text())["arithmetic"]
    ours = json.loads((tmp_path / "r" / "results.json").read_text())
    assert ours["metrics"] == {f"eval/arithmetic/{k}": float(v) for k, v in core.items()
                               if isinstance(v, (int, float))}
    assert set(ours["metrics"]) >= {"eval/arithmetic/exact_match", "eval/arithmetic/num_examples"}
    assert ours["inference_pauses"] == 3


def test_pause_eval_refuses_what_it_cannot_do(pause_pretrained: Any, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "results.json")
    assert cli(["pause-eval", str(pause_pretrained.run_dir), "--inference-pauses", "-1", "--out", out]) == 2
    assert cli(["pause-eval", str(tmp_path), "--inference-pauses", "1", "--out", out]) == 2
    assert "--inference-pauses" in capsys.readouterr().err
    assert not Path(out).exists()
