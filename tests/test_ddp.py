"""A real 2-process DDP run on CPU (gloo) matches the single-process run with the same global batch
(see :func:`helpers.doubled_rows_source` for why the two must agree)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import torch
from helpers import LITPLUG, doubled_rows_source, tiny_args
from safetensors.torch import load_file


def test_ddp_two_processes_matches_single_process(tmp_path: Path) -> None:
    source = doubled_rows_source(tmp_path)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    common = [*tiny_args(tmp_path), source, "data.tokenizer=byte", "data.shuffle=false", "data.seq_len=24",
              "data.batch_size=4", "trainer.max_steps=6", "eval.num_examples=2", "model.max_position_embeddings=64"]
    single = subprocess.run([*LITPLUG, "train", *common, "run.name=single"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([*LITPLUG, "train", *common, "run.name=ddp", "trainer.strategy=ddp", "trainer.devices=2"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "Exported model" in ddp.stdout
    a = load_file(tmp_path / "single" / "export" / "model.safetensors")
    b = load_file(tmp_path / "ddp" / "export" / "model.safetensors")
    assert "MEMBER: 2/2" in ddp.stderr + ddp.stdout  # really two processes
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=f"{key} differs")
