"""SIGTERM (preemption) and Ctrl-C stop `litplug train` after the current step: a checkpoint of that
step, the MLflow run marked KILLED, exit 128+signal, and the same command resumes bit-exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import mlflow
import torch
from helpers import LITPLUG, tiny_args
from safetensors.torch import load_file

MIXTURE = ("data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 256, weight: 0.75}, "
           "{task: arithmetic, name: mul, params: {digits: 2, op: mul}, num_train: 128, weight: 0.25}]")
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


def _command(tmp_path: Path, name: str, cache: Path, *extra: str) -> list[str]:
    """A run long enough to be signalled mid-way; periodic checkpoints never fall on the stop step."""
    args = [a for a in tiny_args(tmp_path, name, cache) if a != "tracking.enabled=false"]
    return [*LITPLUG, "train", *args, MIXTURE, "data.seq_len=20", "trainer.max_steps=200",
            "trainer.checkpoint_every_n_steps=1000", "eval.num_examples=2", *extra]


def _signal_after_first_step(command: list[str], signum: int) -> tuple[int, str, str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("step "):
            proc.send_signal(signum)
            break
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, "".join(seen) + out, err


def _mlflow_run(tmp_path: Path, run_dir: Path) -> mlflow.entities.Run:
    info = json.loads((run_dir / "mlflow_run.json").read_text())
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(info["run_id"])


def test_sigterm_checkpoints_marks_killed_exits_143_and_resumes_bit_exactly(tmp_path: Path,
                                                                           litplug_data_cache: Path) -> None:
    code, out, err = _signal_after_first_step(_command(tmp_path, "stopped", litplug_data_cache), signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, f"exit {code}\n{err[-3000:]}"
    run_dir = tmp_path / "stopped"
    found = re.search(r"interrupted \(SIGTERM\) at step (\d+)", err)
    assert found and "re-run the same command to resume" in err.lower(), err[-3000:]
    step = int(found.group(1))
    assert 1 <= step < 200
    # the stop step itself is saved (no periodic checkpoint falls on it), and nothing was exported
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step
    assert not (run_dir / "export").exists() and not (run_dir / "results.json").exists()
    stopped = _mlflow_run(tmp_path, run_dir)
    assert stopped.info.status == "KILLED"

    again = subprocess.run(_command(tmp_path, "stopped", litplug_data_cache), capture_output=True, text=True,
                           env=ENV, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["global_step"] == 200
    resumed = _mlflow_run(tmp_path, run_dir)
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"

    full = subprocess.run(_command(tmp_path, "full", litplug_data_cache), capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert full.returncode == 0, full.stderr[-3000:]
    a = load_file(tmp_path / "full" / "export" / "model.safetensors")
    b = load_file(run_dir / "export" / "model.safetensors")
    differ = {k: float((a[k] - b[k]).abs().max()) for k in a if k in b and not torch.equal(a[k], b[k])}
    assert a.keys() == b.keys() and not differ, (f"stopped at step {step}, resumed: {len(differ)} tensors differ "
                                                 f"from the uninterrupted run, e.g. {next(iter(differ.items()), None)}"
                                                 f"\nstopped run's stderr:\n{err[-2000:]}")


def test_ctrl_c_after_tokenising_in_process_exits_130_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    """A fresh data cache: litdata's optimize runs in this process and installs its own SIGINT
    handler (os._exit(0)); training must not inherit it."""
    fresh_cache = tmp_path / "fresh-cache"
    code, out, err = _signal_after_first_step(_command(tmp_path, "ctrl_c", fresh_cache), signal.SIGINT)
    assert code == 128 + signal.SIGINT, f"exit {code}\n{err[-3000:]}"
    assert "interrupted (SIGINT)" in err, err[-3000:]
    run_dir = tmp_path / "ctrl_c"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] >= 1
    assert _mlflow_run(tmp_path, run_dir).info.status == "KILLED"


def test_train_command_restores_the_callers_signal_handlers(tmp_path: Path) -> None:
    from litplug.run import train_command
    from litplug.testing import TINY_OVERRIDES

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    train_command(None, [*TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"data.cache_dir={tmp_path / 'cache'}",
                         "trainer.max_steps=2"])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
