"""The α sweep: parsing, endpoints equal scoring the endpoint models, reports, MLflow, run-config lookup."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from litplug_wise_ft.scoring import score_model
from litplug_wise_ft.sweep import parse_alphas, parse_ks
from transformers import AutoModelForCausalLM

from litplug.api import ConfigError, get_task, load_config, load_tokenizer, plugin_manager
from litplug.testing import cli as main

SWEEP = ["--alphas", "0,0.5,1", "--eval", "arithmetic", "--n", "4", "--k", "1,2,4", "--num-examples", "6",
         "--batch-size", "3", "--seed", "7"]


def test_parse_alphas() -> None:
    assert parse_alphas("0:1:0.1") == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert parse_alphas("0.3:0.7:0.2") == [0.3, 0.5, 0.7]
    assert parse_alphas("1, 0.5,0") == [0.0, 0.5, 1.0]
    for bad in ("a:b:c", "0:1", "0:1:-0.1", "", "nan"):
        with pytest.raises(ConfigError, match="--alphas"):
            parse_alphas(bad)
    assert parse_ks("16,1,4") == [1, 4, 16]


def test_sweep_endpoints_score_like_the_endpoint_models(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, _ = model_pair
    out = tmp_path / "sweep"
    assert main(["merge", "wise-ft", "--early", str(early), "--late", str(late), "--out", str(out), *SWEEP,
                 "--task-params", "{digits: 2}", "--no-mlflow", "--keep-models"]) == 0
    result = json.loads((out / "sweep.json").read_text())
    assert [r["alpha"] for r in result["rows"]] == [0.0, 0.5, 1.0]
    assert (out / "sweep.png").stat().st_size > 0 and "| α |" in (out / "sweep.md").read_text()
    assert result["task_params"] == {"digits": 2}
    hooks = plugin_manager(load_config(None, []))  # the core's alone, as the sweep uses without a run config
    examples = get_task("arithmetic", {"digits": 2}).examples("test", 6, 1234)
    tokenizer = load_tokenizer(str(late))
    for row, folder in ((result["rows"][0], early), (result["rows"][-1], late)):
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        direct = score_model(model, tokenizer, hooks, examples, 4, [1, 2, 4], 1.0, seed=7, batch_size=3)
        assert {k: row[k] for k in direct} == direct
    assert sorted(p.name for p in (out / "models").iterdir()) == ["alpha_0", "alpha_0.5", "alpha_1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["early", "late", "sweep"]  # no temporary left


def test_sweep_reads_the_run_config_and_logs_to_its_mlflow_run(tmp_path: Path,
                                                             litplug_run: Callable[..., Any]) -> None:
    from mlflow import MlflowClient

    run = litplug_run({"wise_ft": {"keep_steps": [2]}}, ["tracking.enabled=true"])
    info = json.loads((run.run_dir / "mlflow_run.json").read_text())
    out = tmp_path / "sweep"
    assert main(["merge", "wise-ft", "--early", str(run.run_dir / "wise_ft" / "step_2"), "--late",
                 str(run.export_dir), "--out", str(out), *SWEEP]) == 0
    result = json.loads((out / "sweep.json").read_text())
    assert result["config"] == str((run.run_dir / "config.yaml").resolve())
    assert result["task_params"] == {"digits": 2}
    client = MlflowClient(tracking_uri=info["tracking_uri"])
    runs = client.search_runs([client.get_run(info["run_id"]).info.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{info['run_id']}'")
    assert len(runs) == 1
    sweep_run = runs[0]
    history = client.get_metric_history(sweep_run.info.run_id, "sweep/pass_at_4")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [r["pass@4"] for r in result["rows"]]
    assert sweep_run.data.metrics["best_alpha/pass_at_4"] == result["best"]["pass@4"]["alpha"]
    artifacts = {a.path for a in client.list_artifacts(sweep_run.info.run_id)}
    assert artifacts == {"sweep.json", "sweep.md", "sweep.png"}


def test_sweep_writes_results_json_for_litplug_sweep(tmp_path: Path, model_pair: Any) -> None:
    """``OUT/results.json`` holds ``{"metrics": ...}`` (what ``litplug sweep`` reports): every α's scores
    under ``test/alpha_<α>/``, and for a one-α sweep (one evaluated model) also plain ``test/<metric>``."""
    early, late, _, _ = model_pair
    args = ["--eval", "arithmetic", "--n", "4", "--k", "1,2,4", "--num-examples", "6", "--batch-size", "3",
            "--task-params", "{digits: 2}", "--no-mlflow"]
    one, several = tmp_path / "one", tmp_path / "several"
    assert main(["merge", "wise-ft", "--early", str(early), "--late", str(late), "--alphas", "0.5", *args,
                 "--out", str(one)]) == 0
    row = json.loads((one / "sweep.json").read_text())["rows"][0]
    metrics = json.loads((one / "results.json").read_text())["metrics"]
    for key in ("pass@1", "pass@2", "pass@4", "majority_vote", "greedy", "var_rho"):
        assert metrics[f"test/{key}"] == metrics[f"test/alpha_0.5/{key}"] == row[key]
    assert metrics["test/num_examples"] == 6 and metrics["test/n"] == 4
    assert main(["merge", "wise-ft", "--early", str(early), "--late", str(late), "--alphas", "0,1", *args,
                 "--out", str(several)]) == 0
    rows = json.loads((several / "sweep.json").read_text())["rows"]
    metrics = json.loads((several / "results.json").read_text())["metrics"]
    assert "test/pass@1" not in metrics  # several models: no unlabelled (or "best α") number
    assert [metrics[f"test/alpha_{a}/pass@4"] for a in ("0", "1")] == [r["pass@4"] for r in rows]


def test_sweep_refuses_fewer_prompts_than_asked(tmp_path: Path, model_pair: Any,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--num-examples beyond the split's size (num_test of the task, 200 by default) is an error, not a
    silently smaller evaluation."""
    early, late, _, _ = model_pair
    out = tmp_path / "sweep"
    assert main(["merge", "wise-ft", "--early", str(early), "--late", str(late), "--alphas", "0.5",
                 "--eval", "arithmetic", "--task-params", "{digits: 2}", "--n", "2", "--k", "1",
                 "--num-examples", "201", "--no-mlflow", "--out", str(out)]) == 2
    assert "has only 200 examples" in capsys.readouterr().err
    assert not out.exists()
