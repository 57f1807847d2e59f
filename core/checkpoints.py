"""Checkpoint files: saved atomically on any local filesystem, and portable with their run directory.

Lightning's own local save writes through an fsspec transaction: a temporary file in ``$TMPDIR``, then
``shutil.move`` into place. When ``$TMPDIR`` is on another filesystem (a tmpfs is common) the move is a
copy that truncates ``last.ckpt`` first, so a kill during the save left a 0-byte checkpoint and every
re-run failed. :class:`AtomicCheckpointIO` writes the temporary file beside the target, fsyncs it and
renames it into place (``os.replace``: atomic on one filesystem), so ``last.ckpt`` is always either the
old checkpoint or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import fsspec
import torch
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary file in the checkpoint's own directory, fsync, ``os.replace``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        fs, local_path = fsspec.core.url_to_fs(str(path))
        if storage_options is not None or not isinstance(fs, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)  # object storage: Lightning's own
            return
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a power cut after os.replace keeps the new name)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def relocate_loader_state(checkpoint: dict[str, Any], train_dirs: list[Path]) -> None:
    """Point the saved data-loader state at this run's data cache.

    litdata records each dataset's absolute ``input_dir_path`` and refuses another one on resume, so a
    run directory (with its default cache under ``run.output_dir/.cache``) that was moved could not
    resume. The shard folder's name carries the digest of everything that shaped the shards, so a
    folder of the same name *is* the same data: only then is the path rewritten.
    """
    loops = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
    for state in loops.get("combined_loader", []) or []:
        if not isinstance(state, dict):
            continue
        datasets = state.get("dataset")
        children = datasets.values() if isinstance(datasets, dict) and "input_dir_path" not in datasets else [datasets]
        for index, child in enumerate(children):
            if not isinstance(child, dict) or "input_dir_path" not in child or index >= len(train_dirs):
                continue
            saved, current = child.get("input_dir_path"), train_dirs[index]
            if saved and Path(saved).name == current.name and saved != str(current):
                child["input_dir_path"] = str(current)
