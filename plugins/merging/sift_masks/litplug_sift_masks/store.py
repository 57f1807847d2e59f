"""The merge store: theta_0, the running sum of task vectors, one bit-packed mask per task, and a
manifest that names every file with its sha256.

Layout on disk::

    STORE/manifest.json            format, sign seed, tensor layout, tasks, checksums (the commit point)
    STORE/base/                    theta_0: a copy of the base HF directory (config, tokenizer, weights)
    STORE/tau_sum.<gen>.npy        sum of the task vectors, flat, float64 by default
    STORE/masks/<id>.<gen>.npy     one task's mask, numpy.packbits of tau != 0

Every update writes new files under new names, then replaces ``manifest.json`` in one ``os.replace``
and only then deletes the files the old manifest named. A crash or an error before that replace
leaves the store exactly as it was (unreferenced files are swept by the next update).

Tensors are visited in name order, each placed at an offset rounded up to a multiple of 8 so that
its mask bits start on a byte. Adding or removing a task streams one tensor at a time: besides the
sum being rewritten piece by piece, only one task vector is ever being read.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from litplug_sift_masks.errors import StoreError
from litplug_sift_masks.hfdir import FLOAT_DTYPES, TensorSource, content_digest, write_hf_dir
from litplug_sift_masks.masks import pack_mask, unpack_mask
from litplug_sift_masks.signs import sign_positive
from litplug_sift_masks.streams import NpyReader, NpyWriter, file_sha256

FORMAT = "litplug-sift-store/1"
MANIFEST = "manifest.json"
NORMALIZE = ("tasks", "mask_count")


@dataclass(frozen=True)
class Entry:
    """One tensor's place in the flat layout."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def padded(self) -> int:
        return -(-self.numel // 8) * 8


@dataclass
class TaskRecord:
    """What the manifest keeps about a task: enough to check it and to re-derive it."""

    name: str
    seed: int | None = None  # run.seed of the finetune
    data_fingerprint: str | None = None  # sha256 of the run's data section
    config: dict[str, Any] | None = None  # the run's resolved config (to re-run it for unlearning)
    run_dir: str | None = None
    weights_digest: str | None = None  # content digest of the finetuned weights (set by add)
    extra: dict[str, Any] = field(default_factory=dict)


def _task_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def _manifest_checksum(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def build_layout(source: TensorSource) -> list[Entry]:
    entries, offset = [], 0
    for name in source.names:
        dtype = source.dtype(name)
        if dtype not in FLOAT_DTYPES:
            continue
        entry = Entry(name, source.shape(name), dtype, offset)
        entries.append(entry)
        offset += entry.padded
    return entries


class SiftStore:
    """A store directory. Construct on an existing store; :meth:`create` makes a new one."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest = self._read_manifest()

    # -- reading and checking ------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.is_file():
            raise StoreError(f"'{self.root}' is not a SIFT store (no {MANIFEST}). Create one with "
                             "`litplug sift add --store STORE RUN_DIR`.")
        try:
            manifest = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"Store manifest '{path}' is corrupted (not JSON: {exc}).") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise StoreError(f"Store manifest '{path}' is not a {FORMAT} manifest.")
        if manifest.get("checksum") != _manifest_checksum(manifest):
            raise StoreError(f"Store manifest '{path}' is corrupted (its checksum does not match its content).")
        return manifest

    @property
    def sign_seed(self) -> int:
        return int(self.manifest["sign_seed"])

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @property
    def base_digest(self) -> str:
        return str(self.manifest["base"]["digest"])

    @property
    def layout(self) -> list[Entry]:
        return [Entry(e["name"], tuple(e["shape"]), e["dtype"], e["offset"]) for e in self.manifest["layout"]]

    @property
    def length(self) -> int:
        return int(self.manifest["length"])

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.manifest["tasks"])

    def task(self, name: str) -> dict[str, Any]:
        for record in self.manifest["tasks"]:
            if record["name"] == name:
                return record
        known = ", ".join(t["name"] for t in self.manifest["tasks"]) or "none"
        raise StoreError(f"Store '{self.root}' has no task named '{name}'. Tasks in it: {known}.")

    def _check_file(self, relative: str, expected: str) -> Path:
        path = self.root / relative
        if not path.is_file():
            raise StoreError(f"Store file '{path}' is missing; the store is damaged (restore it from a backup).")
        if file_sha256(path) != expected:
            raise StoreError(f"Store file '{path}' is corrupted: its sha256 does not match the manifest.")
        return path

    def verify_base(self) -> None:
        for name, sha in self.manifest["base"]["files"].items():
            self._check_file(f"base/{name}", sha)

    def _read_mask(self, record: dict[str, Any]) -> np.ndarray:
        path = self._check_file(record["mask"]["file"], record["mask"]["sha256"])
        return np.load(path)

    def verify(self) -> None:
        """Every file the manifest names exists and matches its checksum (reads the whole store)."""
        self.verify_base()
        self._check_file(self.manifest["tau_sum"]["file"], self.manifest["tau_sum"]["sha256"])
        for record in self.manifest["tasks"]:
            self._read_mask(record)

    # -- creating ------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, base_dir: Path, sign_seed: int, sum_dtype: str = "float64") -> SiftStore:
        """A new, empty store around a copy of ``base_dir`` (theta_0). ``root`` must not exist."""
        root = Path(root)
        if root.exists():
            raise StoreError(f"Cannot create a store at '{root}': the path already exists.")
        if sum_dtype not in ("float64", "float32"):
            raise StoreError(f"sum dtype must be float64 or float32 (got '{sum_dtype}').")
        tmp = root.parent / f".{root.name}.creating-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            (tmp / "masks").mkdir(parents=True)
            shutil.copytree(base_dir, tmp / "base", ignore=shutil.ignore_patterns("*.lock", ".*"))
            with TensorSource(tmp / "base") as base:
                layout = build_layout(base)
            length = layout[-1].offset + layout[-1].padded if layout else 0
            with NpyWriter(tmp / "tau_sum.0.npy", sum_dtype, length) as writer:
                for entry in layout:
                    writer.write(np.zeros(entry.padded, dtype=sum_dtype))
                tau_sha = writer.finish()
            manifest = {
                "format": FORMAT, "sign_seed": int(sign_seed), "sum_dtype": sum_dtype, "generation": 0,
                "base": {"source": str(Path(base_dir).resolve()), "digest": content_digest(tmp / "base"),
                         "files": {p.name: file_sha256(p) for p in sorted((tmp / "base").iterdir()) if p.is_file()}},
                "layout": [{"name": e.name, "shape": list(e.shape), "dtype": e.dtype, "offset": e.offset}
                           for e in layout],
                "length": length, "tau_sum": {"file": "tau_sum.0.npy", "sha256": tau_sha}, "tasks": [],
            }
            _write_manifest(tmp, manifest)
            os.replace(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return cls(root)

    # -- updating ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """Hold the store's lock around one update; yields the freshly read manifest."""
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.manifest = self._read_manifest()
                self._sweep()
                yield self.manifest
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _referenced(self) -> set[str]:
        m = self.manifest
        return {m["tau_sum"]["file"], *(t["mask"]["file"] for t in m["tasks"])}

    def _sweep(self) -> None:
        """Delete files left by an update that failed before its commit."""
        keep = self._referenced()
        for path in [*self.root.glob("tau_sum.*.npy"), *self.root.glob("masks/*.npy")]:
            if str(path.relative_to(self.root)) not in keep:
                path.unlink(missing_ok=True)

    def _commit(self, manifest: dict[str, Any], obsolete: list[str]) -> None:
        manifest["generation"] = int(manifest["generation"]) + 1
        _write_manifest(self.root, manifest)
        self.manifest = manifest
        for relative in obsolete:
            (self.root / relative).unlink(missing_ok=True)

    def _check_layout(self, source: TensorSource, what: str) -> None:
        layout = self.layout
        theirs = {e.name: e for e in build_layout(source)}
        ours = {e.name: e for e in layout}
        if set(theirs) != set(ours):
            extra, missing = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
            raise StoreError(f"{what} has other tensors than the store's base model (extra: {extra[:3]}, missing: "
                             f"{missing[:3]}): it was not finetuned from this store's base model.")
        for name, entry in ours.items():
            if theirs[name].shape != entry.shape or theirs[name].dtype != entry.dtype:
                raise StoreError(f"{what}: tensor '{name}' is {theirs[name].dtype}{list(theirs[name].shape)} but the "
                                 f"store's base has {entry.dtype}{list(entry.shape)}: another base model.")

    def _stream(self, model_dir: Path, what: str) -> Iterator[tuple[Entry, torch.Tensor, NpyReader]]:
        """(entry, task vector in float64, reader positioned at that entry of the sum) for each tensor."""
        with TensorSource(model_dir) as task, TensorSource(self.base_dir) as base, \
                NpyReader(self.root / self.manifest["tau_sum"]["file"]) as reader:
            self._check_layout(task, what)
            for entry in self.layout:
                tau = task.get(entry.name).to(torch.float64) - base.get(entry.name).to(torch.float64)
                yield entry, tau.reshape(-1), reader
            if reader.finish() != self.manifest["tau_sum"]["sha256"]:
                raise StoreError(f"Store file '{reader.path}' is corrupted: its sha256 does not match the manifest.")

    def add(self, model_dir: Path, record: TaskRecord) -> dict[str, Any]:
        """Add the task vector ``model_dir - theta_0`` after checking it agrees with v everywhere."""
        with self._update() as manifest:
            if any(t["name"] == record.name for t in manifest["tasks"]):
                raise StoreError(f"Store '{self.root}' already has a task named '{record.name}'. Unlearn it first, "
                                 "or add this one under another name (--name).")
            self.verify_base()
            gen = int(manifest["generation"]) + 1
            tau_file, mask_file = f"tau_sum.{gen}.npy", f"masks/{_task_id(record.name)}.{gen}.npy"
            record.weights_digest = content_digest(model_dir)
            disagree, nonzero, first_bad = 0, 0, None
            try:
                with NpyWriter(self.root / tau_file, manifest["sum_dtype"], self.length) as sums, \
                        NpyWriter(self.root / mask_file, np.uint8, self.length // 8) as masks:
                    for entry, tau, reader in self._stream(model_dir, f"Task '{record.name}' ({model_dir})"):
                        positive = sign_positive(entry.name, entry.shape, self.sign_seed).reshape(-1)
                        bad = int(torch.where(positive, tau < 0, tau > 0).sum())
                        if bad and first_bad is None:
                            first_bad = entry.name
                        disagree += bad
                        moved = tau != 0
                        nonzero += int(moved.sum())
                        chunk = reader.read(entry.padded)
                        chunk[: entry.numel] += tau.numpy()
                        sums.write(chunk)
                        masks.write(pack_mask(moved))  # padded // 8 bytes: offsets are multiples of 8
                    if disagree:
                        raise StoreError(
                            f"Task '{record.name}' ({model_dir}) disagrees with the store's sign vector (sign seed "
                            f"{self.sign_seed}) in {disagree} entries, first in '{first_bad}': it was trained with "
                            "another plugins.sift_masks.sign_seed, from another base model, or without sift_masks. "
                            "The store is unchanged.")
                    tau_sha, mask_sha = sums.finish(), masks.finish()
            except BaseException:
                for relative in (tau_file, mask_file):
                    (self.root / relative).unlink(missing_ok=True)
                raise
            entry = {**asdict(record), "id": _task_id(record.name), "mask": {"file": mask_file, "sha256": mask_sha},
                     "nnz": nonzero, "numel": sum(e.numel for e in self.layout),
                     "added": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            updated = {**manifest, "tasks": [*manifest["tasks"], entry],
                       "tau_sum": {"file": tau_file, "sha256": tau_sha}}
            self._commit(updated, [manifest["tau_sum"]["file"]])
            return entry

    def unlearn(self, name: str, model_dir: Path) -> None:
        """Subtract task ``name``'s vector (re-derived into ``model_dir``) and drop its mask."""
        with self._update() as manifest:
            record = self.task(name)
            self.verify_base()
            digest = content_digest(model_dir)
            if record.get("weights_digest") and digest != record["weights_digest"]:
                raise StoreError(f"The weights in '{model_dir}' are not the ones added as task '{name}' (content "
                                 "digest differs): re-deriving the task did not reproduce it. The store is unchanged.")
            stored_mask = self._read_mask(record)
            gen = int(manifest["generation"]) + 1
            tau_file = f"tau_sum.{gen}.npy"
            try:
                with NpyWriter(self.root / tau_file, manifest["sum_dtype"], self.length) as sums:
                    for entry, tau, reader in self._stream(model_dir, f"Task '{name}' ({model_dir})"):
                        start = entry.offset // 8
                        expected = stored_mask[start : start + (entry.numel + 7) // 8]
                        if not np.array_equal(pack_mask(tau != 0), expected):
                            raise StoreError(f"Task '{name}': the vector in '{model_dir}' does not match the stored "
                                             f"mask in '{entry.name}'. The store is unchanged.")
                        chunk = reader.read(entry.padded)
                        chunk[: entry.numel] -= tau.numpy()
                        sums.write(chunk)
                    tau_sha = sums.finish()
            except BaseException:
                (self.root / tau_file).unlink(missing_ok=True)
                raise
            updated = {**manifest, "tasks": [t for t in manifest["tasks"] if t["name"] != name],
                       "tau_sum": {"file": tau_file, "sha256": tau_sha}}
            self._commit(updated, [manifest["tau_sum"]["file"], record["mask"]["file"]])

    # -- serving -------------------------------------------------------------------------------
    def _mask_counts(self) -> np.ndarray:
        """How many tasks' masks cover each entry (for ``normalize="mask_count"``)."""
        counts = np.zeros(self.length, dtype=np.int32)
        for record in self.manifest["tasks"]:
            counts += np.unpackbits(self._read_mask(record), count=self.length)
        return counts

    def served_weights(self, task: str | None = None, scale: float = 1.0,
                       normalize: str = "tasks") -> dict[str, torch.Tensor]:
        """theta_0 + scale * (tau_sum * m_task) / |T| (``task=None``: no mask, the plain merge).

        ``normalize="mask_count"`` divides each entry by the number of tasks whose mask covers it
        instead of |T| (a per-entry mean over the tasks that moved it) [U]. Computed in float64,
        then cast to the base dtype.
        """
        if normalize not in NORMALIZE:
            raise StoreError(f"normalize must be one of {', '.join(NORMALIZE)} (got '{normalize}').")
        self.verify_base()
        mask = self._read_mask(self.task(task)) if task is not None else None
        count = len(self.manifest["tasks"])
        counts = self._mask_counts() if normalize == "mask_count" and count else None
        out: dict[str, torch.Tensor] = {}
        with TensorSource(self.base_dir) as base, NpyReader(self.root / self.manifest["tau_sum"]["file"]) as reader:
            for name in base.names:
                out[name] = base.get(name)
            for entry in self.layout:
                tau_sum = reader.read(entry.padded)[: entry.numel]
                if count == 0:
                    continue
                if mask is not None:
                    start = entry.offset // 8
                    bits = unpack_mask(mask[start : start + entry.padded // 8], (entry.numel,))
                    tau_sum = tau_sum * bits.numpy()
                if counts is not None:
                    divisor = np.maximum(counts[entry.offset : entry.offset + entry.numel], 1)
                else:
                    divisor = count
                delta = torch.from_numpy(scale * tau_sum / divisor).reshape(entry.shape)
                theta0 = out[entry.name]
                out[entry.name] = (theta0.to(torch.float64) + delta).to(theta0.dtype)
            if reader.finish() != self.manifest["tau_sum"]["sha256"]:
                raise StoreError(f"Store file '{reader.path}' is corrupted: its sha256 does not match the manifest.")
        return out

    def export(self, out: Path, task: str | None = None, scale: float = 1.0, normalize: str = "tasks",
               overwrite: bool = False) -> Path:
        """Write served weights (``task``) or the plain merge (``task=None``) as a plain HF directory."""
        weights = self.served_weights(task, scale, normalize)
        meta = {"sift_task": task or "", "sift_merged_tasks": str(len(self.manifest["tasks"])),
                "sift_scale": repr(scale), "sift_normalize": normalize}
        return write_hf_dir(self.base_dir, weights, Path(out), meta, overwrite=overwrite)

    def read_sum(self) -> np.ndarray:
        """The whole running sum (for tests and small stores)."""
        path = self._check_file(self.manifest["tau_sum"]["file"], self.manifest["tau_sum"]["sha256"])
        return np.load(path)

    def read_mask(self, name: str) -> np.ndarray:
        return self._read_mask(self.task(name))


def _write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """The commit point: write beside, fsync, then one atomic rename."""
    manifest = {**manifest, "checksum": _manifest_checksum(manifest)}
    tmp = root / f".{MANIFEST}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, root / MANIFEST)
    directory = os.open(root, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
