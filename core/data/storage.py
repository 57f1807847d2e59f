"""Where tokenised shards live: a local folder, or a prefix on object storage (``s3://``, ``gs://``, ...).

Shards for object storage are written by ``litdata.optimize`` to a private local folder and then uploaded
through fsspec, ``index.json`` last, so "``index.json`` exists" still means "complete" (litdata's own remote
output stages chunks in one machine-wide ``/tmp/chunks`` that every ``optimize`` call wipes). They are
streamed back by litdata's ``StreamingDataset``, which downloads chunks to a local folder (see
:func:`chunk_cache`). Credentials and endpoints come from the storage's standard settings (for S3,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_ENDPOINT_URL`` or ``~/.aws``), read by both
fsspec (s3fs) and litdata (boto3).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec
from litdata import StreamingDataset
from litdata.constants import _SUPPORTED_PROVIDERS
from omegaconf import DictConfig

from litplug.errors import DataError

# A shard folder: a local path, or a URL on object storage (kept a str: Path would fold "s3://" to "s3:/").
ShardDir = Path | str

INDEX = "index.json"


def is_remote(location: ShardDir | None) -> bool:
    """Whether ``location`` is a URL on another filesystem than the local one."""
    return isinstance(location, str) and fsspec.utils.get_protocol(location) not in ("file", "local")


def url_to_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """fsspec's filesystem for ``url``; a missing filesystem package (s3fs, gcsfs, ...) named as a DataError."""
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        hint = " (pip install 'litplug[s3]')" if fsspec.utils.get_protocol(url) in ("s3", "s3a") else ""
        raise DataError(f"'{url}' needs a filesystem package that is not installed{hint}: {exc}") from None


def check_streamable(location: str) -> None:
    """litdata streams shards only from the object stores it has clients for."""
    protocol = fsspec.utils.get_protocol(location)
    if protocol not in _SUPPORTED_PROVIDERS:
        raise DataError(f"data.cache_dir '{location}': litdata streams shards only from "
                        f"{', '.join(p + '://' for p in _SUPPORTED_PROVIDERS)} or a local folder, not {protocol}://.")


def join(root: ShardDir, name: str) -> ShardDir:
    return f"{str(root).rstrip('/')}/{name}" if is_remote(root) else Path(root) / name


def has_index(location: ShardDir) -> bool:
    """Whether a shard folder is complete (its ``index.json`` is written last)."""
    if not is_remote(location):
        return (Path(location) / INDEX).is_file()
    fs, path = url_to_fs(str(location))
    return fs.exists(f"{path}/{INDEX}")


def upload(local_dir: Path, url: str) -> None:
    """Copy a finished local shard folder to ``url``, ``index.json`` last (see the module docstring)."""
    fs, path = url_to_fs(url)
    files = sorted(p for p in local_dir.iterdir() if p.is_file())
    for file in sorted(files, key=lambda p: p.name == INDEX):
        fs.put_file(str(file), f"{path}/{file.name}")


def chunk_cache(cfg: DictConfig) -> str:
    """The local folder litdata downloads remote chunks to: ``LITDATA_CACHE_DIR`` (litdata's own setting)
    when set, else ``<run.output_dir>/.cache/chunks``, beside the default local shard cache."""
    return os.environ.get("LITDATA_CACHE_DIR") or str(Path(cfg.run.output_dir) / ".cache" / "chunks")


def open_shards(location: ShardDir, cfg: DictConfig, **kwargs: Any) -> StreamingDataset:
    """A ``StreamingDataset`` over a shard folder; remote chunks are cached under :func:`chunk_cache`."""
    if not is_remote(location):
        return StreamingDataset(str(location), **kwargs)
    allow_http_endpoints()
    return StreamingDataset(str(location), cache_dir=chunk_cache(cfg), **kwargs)


def allow_http_endpoints() -> None:
    """Let litdata's obstore client reach an ``http://`` endpoint (MinIO, moto, a local gateway).

    litdata downloads chunks with obstore, configured from its boto3 client's endpoint, but passes its
    own client options, which drop obstore's ``allow_http`` (and its ``AWS_ALLOW_HTTP``): a plain-http
    endpoint fails with "BadScheme". The option only permits http URLs, and the URL is http only where
    the user configured such an endpoint, so it is set for every endpoint. (A private litdata constant:
    tests/test_s3.py, which streams from an http server, fails if it moves.)
    """
    from litdata.streaming import downloader

    options = getattr(downloader, "_OBSTORE_CLIENT_OPTIONS", None)
    if isinstance(options, dict):
        options.setdefault("allow_http", True)
