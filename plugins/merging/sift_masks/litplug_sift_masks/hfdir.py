"""HF model directories as the merge code sees them: tensors read one at a time, a content digest
that names the weights (not the file bytes), and an atomic writer for merged/served models."""

from __future__ import annotations

import hashlib
import shutil
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from litplug.weights import atomic_directory, safetensors_files
from litplug_sift_masks.errors import StoreError

FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


def resolve_model_dir(path: str | Path) -> Path:
    """A litplug run directory means its ``export/``; an HF directory means itself."""
    path = Path(path)
    if (path / "export" / "config.json").is_file():
        return path / "export"
    if (path / "config.json").is_file():
        return path
    raise StoreError(f"'{path}' is neither a finished litplug run (with export/) nor an HF model directory "
                     "(with config.json).")


class TensorSource:
    """Open safetensors handles of one model directory; tensors are loaded only when asked for."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self._stack = ExitStack()
        self._where: dict[str, Any] = {}
        try:
            files = safetensors_files(self.model_dir)
        except FileNotFoundError as exc:
            raise StoreError(f"'{self.model_dir}': {exc}") from None
        for file in files:
            handle = self._stack.enter_context(safe_open(file, framework="pt"))
            self._where.update(dict.fromkeys(handle.keys(), handle))

    @property
    def names(self) -> list[str]:
        return sorted(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._where[name].get_slice(name).get_shape())

    def dtype(self, name: str) -> str:
        return str(self._where[name].get_slice(name).get_dtype())

    def get(self, name: str) -> torch.Tensor:
        return self._where[name].get_tensor(name)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> TensorSource:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def content_digest(model_dir: Path) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: equal weights give equal
    digests whatever the file's metadata or sharding."""
    sha = hashlib.sha256()
    with TensorSource(model_dir) as source:
        for name in source.names:
            tensor = source.get(name).contiguous()
            sha.update(f"{name}\x1f{tensor.dtype}\x1f{tuple(tensor.shape)}\x1e".encode())
            sha.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return sha.hexdigest()


def write_hf_dir(base_dir: Path, tensors: dict[str, torch.Tensor], out: Path, metadata: dict[str, str],
                 overwrite: bool = False) -> Path:
    """A plain HF directory: the base's config/tokenizer files plus ``model.safetensors`` = tensors.
    Written to a temporary sibling and renamed, so a crash never leaves half a model behind."""
    try:
        with atomic_directory(out, overwrite=overwrite) as tmp:
            for item in Path(base_dir).iterdir():
                if item.is_file() and not item.name.endswith(".safetensors") and item.name != (
                        "model.safetensors.index.json"):
                    shutil.copy2(item, tmp / item.name)
            save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt", **metadata})
    except FileExistsError:
        raise StoreError(f"Output directory '{out}' already exists; choose another or pass --overwrite.") from None
    return out
