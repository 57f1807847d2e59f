"""Tracking never blocks or kills training: a dead server at start-up is refused in seconds, one that
dies mid-run costs one warning. Against a real `mlflow server` on 127.0.0.1, killed mid-run.

The bounds are subprocess timeouts: without the fixes, MLflow's default retries keep each command
waiting for minutes, well past them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from helpers import LITPLUG, free_port, litplug, start_mlflow_server, tiny_args

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


def _tracked(tmp_path: Path, uri: str, cache: Path, *extra: str) -> list[str]:
    args = [a for a in tiny_args(tmp_path, "run", cache) if a != "tracking.enabled=false"]
    return [*args, "tracking.enabled=true", f"tracking.uri={uri}", *extra]


def test_unreachable_server_at_start_exits_2_at_once_and_writes_nothing(tmp_path: Path,
                                                                         litplug_data_cache: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    done = litplug("train", *_tracked(tmp_path, uri, litplug_data_cache), env=env, timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert uri in done.stderr and "tracking.enabled=false" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_server_dying_mid_run_warns_once_and_the_run_finishes(tmp_path: Path, litplug_data_cache: Path) -> None:
    server, uri = start_mlflow_server(tmp_path)
    env = {k: v for k, v in ENV.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}
    command = [*LITPLUG, "train", *_tracked(tmp_path, uri, litplug_data_cache, "trainer.max_steps=200",
                                            "trainer.checkpoint_every_n_steps=50", "eval.num_examples=2")]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    try:
        for line in run.stdout:
            seen.append(line)
            if line.startswith("step 3/"):
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=30)
                break
        assert server.poll() is not None, "the run ended before the server could be killed"
        out, err = run.communicate(timeout=240)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        if run.poll() is None:
            run.kill()
    out = "".join(seen) + out
    assert run.returncode == 0, err[-3000:]
    assert err.count("litplug: warning: MLflow tracking") == 1, err[-3000:]
    assert uri in err and "Traceback" not in err
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["global_step"] == 200 and (tmp_path / "run" / "export" / "model.safetensors").is_file()
    assert "Exported model" in out and "tracking was interrupted" in out
