"""Streaming, checksummed files: flat ``.npy`` arrays read and written one tensor at a time.

The running sum of task vectors is a 1-D ``.npy`` file; adding or removing a task reads it in
tensor-sized pieces, writes the updated sum to a new file in the same pass, and hashes both on the
way, so the checksum costs no extra read and no whole-model buffer is ever held.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _Hashing:
    """A binary file whose reads or writes all pass through sha256."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha.update(data)
        return data

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return self.handle.write(data)


class NpyReader:
    """Sequential reads of a 1-D ``.npy``; :meth:`finish` checks the whole file's sha256."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed in finish()/__exit__
        self._hashing = _Hashing(self._file)
        if np.lib.format.read_magic(self._hashing) != (1, 0):
            raise ValueError(f"'{self.path}' is not a version 1.0 .npy file")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(self._hashing)
        if len(shape) != 1 or fortran:
            raise ValueError(f"'{self.path}' is not a flat array")
        self.length, self.dtype = int(shape[0]), np.dtype(dtype)

    def read(self, count: int) -> np.ndarray:
        data = self._hashing.read(count * self.dtype.itemsize)
        if len(data) != count * self.dtype.itemsize:
            raise ValueError(f"'{self.path}' is truncated")
        return np.frombuffer(data, dtype=self.dtype).copy()

    def finish(self) -> str:
        """Hash any bytes not read yet, close, and return the file's sha256."""
        while self._hashing.read(_CHUNK):
            pass
        self._file.close()
        return self._hashing.sha.hexdigest()

    def __enter__(self) -> NpyReader:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._file.close()


class NpyWriter:
    """Sequential writes of a 1-D ``.npy`` of known length; :meth:`finish` fsyncs and returns sha256."""

    def __init__(self, path: Path, dtype: np.dtype | str, length: int) -> None:
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.length = length
        self.written = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish()/__exit__
        self._hashing = _Hashing(self._file)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (length,)}
        np.lib.format.write_array_header_1_0(self._hashing, header)

    def write(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype).reshape(-1)
        self.written += values.size
        self._hashing.write(values.tobytes())

    def finish(self) -> str:
        if self.written != self.length:
            raise ValueError(f"'{self.path}': wrote {self.written} of {self.length} values")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._hashing.sha.hexdigest()

    def __enter__(self) -> NpyWriter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._file.close()
