"""HF model directories as the merge code sees them: tensors read one at a time, a content digest
that names the weights (not the file bytes), and an atomic writer for merged/served models."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import TracebackType

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from litplug.api import atomic_directory, safetensors_files
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
    """The tensors of one model directory, each loaded only when asked for.

    Every :meth:`get` opens, reads and closes its file, so the memory-mapped pages of a read tensor
    are released at once instead of accumulating into a whole model's worth of resident memory.
    """

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = Path(model_dir)
        self._file: dict[str, Path] = {}
        self._meta: dict[str, tuple[tuple[int, ...], str]] = {}
        try:
            files = safetensors_files(self.model_dir)
        except FileNotFoundError as exc:
            raise StoreError(f"'{self.model_dir}': {exc}") from None
        for file in files:
            with safe_open(file, framework="pt") as handle:
                for name in handle.keys():
                    piece = handle.get_slice(name)
                    self._file[name] = file
                    self._meta[name] = (tuple(piece.get_shape()), str(piece.get_dtype()))

    @property
    def names(self) -> list[str]:
        return sorted(self._file)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._meta[name][0]

    def dtype(self, name: str) -> str:
        return self._meta[name][1]

    def get(self, name: str) -> torch.Tensor:
        with safe_open(self._file[name], framework="pt") as handle:
            return handle.get_tensor(name)

    def close(self) -> None:
        """Nothing stays open between reads; kept so the class works as a context manager."""

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
