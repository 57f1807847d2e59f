"""Tracking against a real `mlflow server` on 127.0.0.1, checked through MLflow's own client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from helpers import start_mlflow_server, stop_mlflow_server

from litplug.testing import run_training


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    proc, url = start_mlflow_server(tmp_path)
    try:
        yield url
    finally:
        stop_mlflow_server(proc)


def test_run_is_recorded_on_a_real_tracking_server(mlflow_server: str, tmp_path: Path, litplug_data_cache) -> None:
    run = run_training(tmp_path / "runs", overrides=["tracking.enabled=true", f"tracking.uri={mlflow_server}",
                                                     "tracking.experiment=server-test"], cache_dir=litplug_data_cache)
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    recorded = client.get_run(run.results["mlflow_run_id"])
    assert recorded.info.status == "FINISHED"
    assert client.get_experiment(recorded.info.experiment_id).name == "server-test"
    assert recorded.data.params["run.seed"] == "0"
    assert recorded.data.metrics["train/loss"] == pytest.approx(run.results["metrics"]["train/loss"])
    assert recorded.data.tags["litplug.version"]
    assert {"config.yaml", "results.json", "model"} <= {a.path for a in client.list_artifacts(recorded.info.run_id)}
