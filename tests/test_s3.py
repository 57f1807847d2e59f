"""Data on object storage: a jsonl source read from ``s3://`` through fsspec, and the tokenised shards
written to and streamed back from ``s3://`` (``data.cache_dir``), against a real S3-compatible server
(moto's server mode) on 127.0.0.1. The storage must not change the data: a resumed run is bit-exact,
and the same data as local files trains the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import free_port
from safetensors.torch import load_file

from litplug.data.sources import _file_split
from litplug.data.tasks import get_task
from litplug.testing import run_training

pytest.importorskip("moto.server", reason="needs moto[server] (the dev extra)")
pytest.importorskip("s3fs", reason="needs s3fs (the s3 or dev extra)")

BUCKET = "litplug-test"
STEPS = ["data.seq_len=20", "trainer.max_steps=6", "trainer.checkpoint_every_n_steps=3",
         "trainer.keep_checkpoints=true", "eval.num_examples=2"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A moto S3 server on a free port (its own process group), this process pointed at it through the
    standard AWS variables only, and a fresh bucket; yields a boto3 client."""
    import boto3
    import s3fs

    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint,
                           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
            mp.setenv(key, value)
        mp.delenv("LITDATA_CACHE_DIR", raising=False)
        mp.delenv("AWS_PROFILE", raising=False)
        s3fs.S3FileSystem.clear_instance_cache()  # an instance made before would keep its old endpoint
        try:
            for _ in range(120):
                try:
                    with urllib.request.urlopen(endpoint, timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None:
                        pytest.fail(f"moto server exited: {log_path.read_text()[-2000:]}")
                    time.sleep(0.5)
            else:
                pytest.fail(f"moto server did not answer: {log_path.read_text()[-2000:]}")
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            yield client
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _jsonl(n_train: int = 160, fraction: float = 0.1) -> bytes:
    """Prompt/answer rows with some held out (validation_fraction), as jsonl."""
    rows = [e for e in get_task("arithmetic", {"digits": 2}).examples("train", n_train, 0)]
    assert any(_file_split(e, fraction) == "held_out" for e in rows)
    return "".join(json.dumps({"prompt": e.prompt, "answer": e.answer}) + "\n" for e in rows).encode()


def _train(out: Path, name: str, source: str, cache: str) -> Any:
    data = f"data.sources=[{{path: '{source}', validation_fraction: 0.1}}]"
    return run_training(out, overrides=[data, f"data.cache_dir={cache}", *STEPS], name=name)


def _keys(client: Any, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _weights(run: Any) -> dict[str, torch.Tensor]:
    return load_file(run.export_dir / "model.safetensors")


@pytest.fixture(scope="module")
def full(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An uninterrupted run: its source and its shards on S3."""
    s3.put_object(Bucket=BUCKET, Key="data/train.jsonl", Body=_jsonl())
    out = tmp_path_factory.mktemp("s3-runs")
    return _train(out, "full", f"s3://{BUCKET}/data/train.jsonl", f"s3://{BUCKET}/cache")


def test_shards_are_written_to_and_streamed_from_the_bucket(s3: Any, full: Any) -> None:
    keys = _keys(s3, "cache/")
    folders = {k.split("/")[1] for k in keys}
    assert {f.split("-")[1] for f in folders} == {"train", "validation"}, keys
    for folder in folders:
        assert f"cache/{folder}/index.json" in keys
        assert any(k.startswith(f"cache/{folder}/chunk-") and k.endswith(".bin") for k in keys), keys
    assert full.results["global_step"] == 6
    local = Path(full.cfg.run.output_dir) / ".cache"
    # nothing tokenised locally: the local cache holds only the chunks litdata downloaded from the bucket
    assert [p.name for p in local.iterdir()] == ["chunks"]
    assert list((local / "chunks").rglob("chunk-*.bin")), "no chunk was downloaded from the bucket"


def test_a_second_run_reuses_the_shards_in_the_bucket(s3: Any, full: Any, tmp_path: Path) -> None:
    before = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="cache/")["Contents"]}
    again = _train(tmp_path, "again", f"s3://{BUCKET}/data/train.jsonl", f"s3://{BUCKET}/cache")
    after = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="cache/")["Contents"]}
    assert after == before, "the cached shards were written again"
    assert all(torch.equal(a, b) for a, b in zip(_weights(full).values(), _weights(again).values()))


def test_resume_from_s3_is_bit_exact(full: Any, tmp_path: Path) -> None:
    """Resumed from step 3 under another output_dir, so its chunks download to another local folder
    (the loader state records the first run's, and must be relocated)."""
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    (resumed_dir / "checkpoints" / "last.ckpt").write_bytes((full.run_dir / "checkpoints" / "step=3.ckpt").read_bytes())
    resumed = _train(tmp_path, "resumed", f"s3://{BUCKET}/data/train.jsonl", f"s3://{BUCKET}/cache")
    assert resumed.results["global_step"] == 6
    kept = sorted(p.name for p in (resumed_dir / "checkpoints").glob("step=*.ckpt"))
    assert kept == ["step=6.ckpt"], f"the run started over instead of resuming from step 3: {kept}"
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert resumed.results["metrics"]["train/loss"] == full.results["metrics"]["train/loss"]


def test_local_files_train_the_same_weights_as_s3(full: Any, tmp_path: Path) -> None:
    source = tmp_path / "train.jsonl"  # the same name: a source is named after its file
    source.write_bytes(_jsonl())
    local = _train(tmp_path, "local", str(source), str(tmp_path / "cache"))
    a, b = _weights(full), _weights(local)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_cache_dir_litdata_cannot_stream_from_is_refused_by_name(tmp_path: Path) -> None:
    from litplug.errors import DataError

    with pytest.raises(DataError, match=r"data.cache_dir 'memory://cache'.*s3://"):
        run_training(tmp_path, overrides=["data.cache_dir=memory://cache"])
