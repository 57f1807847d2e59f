"""Past one process: FSDP (FSDP2 through Lightning's ModelParallelStrategy) on 2 CPU processes, and two
"nodes" of one process each launched by torchrun on 127.0.0.1, each against one process with the same
global batch (:func:`helpers.doubled_rows_source` says why they must agree). Every training runs as a
subprocess: Lightning's distributed launchers would take pytest down with them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import LITPLUG, doubled_rows_source, free_port, tiny_args
from safetensors.torch import load_file

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
# Constant LR: a run extended from 3 to 6 steps then has the schedule of a 6-step run (warm-up is 10 steps).
SCHEDULE = ["optim.schedule=constant", "trainer.checkpoint_every_n_steps=1"]


def _common(tmp_path: Path) -> list[str]:
    return [*tiny_args(tmp_path), doubled_rows_source(tmp_path), "data.tokenizer=byte", "data.shuffle=false",
            "data.seq_len=24", "data.batch_size=4", "trainer.max_steps=6", "eval.num_examples=2",
            "model.max_position_embeddings=64", *SCHEDULE]


def _train(*args: str, cmd: list[str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([*(cmd or LITPLUG), "train", *args], capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "export" / "model.safetensors")


def _assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=f"{what}: {key} differs")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One process, batch b, 6 steps: the reference every other run must match."""
    tmp_path = tmp_path_factory.mktemp("dist")
    common = _common(tmp_path)
    _train(*common, "run.name=single")
    return tmp_path, common


def test_fsdp_on_two_cpu_processes_matches_one_process_and_resumes(single: tuple[Path, list[str]]) -> None:
    tmp_path, common = single
    fsdp = ["trainer.strategy=fsdp", "trainer.devices=2"]
    done = _train(*common, *fsdp, "run.name=fsdp")
    assert "MEMBER: 2/2" in done.stdout + done.stderr  # really two processes
    reference = _weights(tmp_path / "single")
    _assert_close(reference, _weights(tmp_path / "fsdp"), "fsdp vs one process")
    # interrupted at step 3 (a run of 3 steps), then the same command with the full length resumes it
    _train(*common, *fsdp, "run.name=fsdp_resumed", "trainer.max_steps=3")
    done = _train(*common, *fsdp, "run.name=fsdp_resumed")
    assert "Restored all states" in done.stdout + done.stderr
    resumed = _weights(tmp_path / "fsdp_resumed")
    for key, value in _weights(tmp_path / "fsdp").items():
        assert torch.equal(resumed[key], value), f"resumed fsdp run differs from the uninterrupted one at {key}"


def test_two_nodes_on_localhost_match_one_process(single: tuple[Path, list[str]]) -> None:
    """The cluster recipe (README): one torchrun per node with --nnodes, --node_rank and the rendezvous
    address; litplug is told trainer.num_nodes and the processes per node, Lightning reads the rest."""
    tmp_path, common = single
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun comes with torch"
    port = free_port()
    args = [*common, "run.name=two_nodes", "trainer.strategy=ddp", "trainer.num_nodes=2", "trainer.devices=1"]
    nodes = [subprocess.Popen([torchrun, "--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}",
                               "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "litplug.cli", "train", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    for rank, (node, out) in enumerate(zip(nodes, outputs)):
        assert node.returncode == 0, f"node {rank}:\n{out[-4000:]}"
    assert "MEMBER: 2/2" in outputs[1] and "Exported model" in outputs[0]  # node 1 is the second process
    _assert_close(_weights(tmp_path / "single"), _weights(tmp_path / "two_nodes"), "two nodes vs one process")
