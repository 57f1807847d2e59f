"""A real 2-process DDP run on CPU (gloo) matches the single-process run with the same global batch.

The data file holds its training rows twice, in the same order. litdata gives each rank a
contiguous half of the stream, so rank 0 reads the first copy and rank 1 the second: at every step
the two ranks hold identical rows, the global batch is (b, b), and its mean-gradient equals that of
b alone. The single-process run with batch b must therefore match DDP to float tolerance; a wrong
gradient reduction (sum instead of mean) or wrong sharding (both ranks reading the same half of a
different order) breaks the match.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import torch
from helpers import LITPLUG, tiny_args
from safetensors.torch import load_file

from litplug.data.sources import _file_split
from litplug.data.tasks import get_task


def _lines(n_train: int, fraction: float) -> tuple[list[str], list[str]]:
    """``n_train`` rows of the file's train split and the rows it holds out, as jsonl lines."""
    train, held_out = [], []
    for e in get_task("arithmetic", {"digits": 2}).examples("train", 4 * n_train, 0):
        line = json.dumps({"prompt": e.prompt, "answer": e.answer})
        (train if _file_split(e, fraction) == "train" else held_out).append(line)
    return train[:n_train], held_out


def test_ddp_two_processes_matches_single_process(tmp_path: Path) -> None:
    # Each copy's length is a multiple of the per-rank batch, so rank 1 starts exactly at copy 2.
    lines, held_out = _lines(60, 0.05)
    data = tmp_path / "twice.jsonl"
    data.write_text("\n".join(held_out + lines + lines) + "\n")
    source = (f"data.sources=[{{path: {data}, validation_fraction: 0.05}}]")
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
