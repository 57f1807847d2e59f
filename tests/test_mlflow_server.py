"""Tracking against a real `mlflow server` on 127.0.0.1, checked through MLflow's own client."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from litplug.testing import run_training


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination",
         str(tmp_path / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
