"""`litplug eval` on a finished run: exact match, pass@k, majority vote, written and logged."""

from __future__ import annotations

import json

import mlflow
import pytest

from litplug.cli import main


def test_eval_reports_pass_at_k_and_logs_to_the_run(litplug_run, capsys) -> None:
    run = litplug_run(overrides=["tracking.enabled=true", "trainer.max_steps=30", "optim.lr=1e-2"])
    code = main(["eval", str(run.run_dir), "eval.n=4", "eval.k=[1,2,4]", "eval.num_examples=8",
                 "eval.temperature=1.0"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((run.run_dir / "eval.json").read_text())["arithmetic"]
    assert results["num_examples"] == 8
    p1, p2, p4 = results["pass@1"], results["pass@2"], results["pass@4"]
    assert 0 <= p1 <= p2 <= p4 <= 1  # pass@k never falls as k grows
    assert 0 <= results["exact_match"] <= 1 and 0 <= results["majority_vote"] <= 1
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.run_dir.parent / 'mlflow.db'}")
    logged = client.get_run(run.results["mlflow_run_id"]).data.metrics
    assert logged["eval/arithmetic/pass_at_4"] == pytest.approx(p4)


def test_eval_bad_inputs_exit_2(litplug_run, capsys) -> None:
    run = litplug_run()
    assert main(["eval", str(run.run_dir), "eval.n=2", "eval.k=[4]"]) == 2
    assert "eval.k" in capsys.readouterr().err
    assert main(["eval", str(run.run_dir), "data.sources=[{task: general, num_train: 64}]"]) == 2
    assert "prompt/answer" in capsys.readouterr().err
    assert main(["eval", str(run.run_dir.parent / "missing_run")]) == 2


def test_a_run_shorter_than_the_logging_interval_still_records_its_losses(litplug_run) -> None:
    run = litplug_run(overrides=["tracking.enabled=true", "trainer.log_every_n_steps=50"])
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{run.run_dir.parent / 'mlflow.db'}")
    logged = client.get_run(run.results["mlflow_run_id"]).data.metrics
    assert logged["train/loss"] == pytest.approx(run.results["metrics"]["train/loss"])
    assert len(client.get_metric_history(run.results["mlflow_run_id"], "train/loss")) == 1
    assert "eval/arithmetic/exact_match" in logged
