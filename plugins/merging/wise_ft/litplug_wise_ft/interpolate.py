"""θ = (1−α)·θ_early + α·θ_late, computed one tensor at a time from safetensors.

Each input tensor is read through its own short-lived ``safe_open`` handle: a handle keeps its file
memory-mapped, and pages read through a long-lived handle stay resident, so two open models would
cost two model sizes of RSS. Output tensors are collected one shard at a time (shards planned with
``huggingface_hub``'s splitter, named the way ``save_pretrained`` names them), so peak memory is
about one output shard plus a few tensors.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from huggingface_hub import split_state_dict_into_shards_factory
from safetensors import safe_open
from safetensors.torch import save_file

from litplug.api import ConfigError, atomic_directory, tensor_index
from litplug.api import __version__ as litplug_version
from litplug_wise_ft.compat import check_compatible

WEIGHT_INDEX = "model.safetensors.index.json"
MERGE_RECORD = "wise_ft_merge.json"
DEFAULT_MAX_SHARD_SIZE = "2GB"


@dataclass(frozen=True)
class TensorInfo:
    """What the shard planner needs to know about an output tensor without loading it."""

    nbytes: int


def interpolate_tensor(early: torch.Tensor, late: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1−α)·early + α·late for floating-point tensors, in the late tensor's dtype.

    α = 0 and α = 1 return the endpoints bit for bit (no arithmetic, so even -0.0 and NaN survive);
    other α use ``torch.lerp`` in at least float32, so bf16/fp16 weights are not rounded twice.
    A non-float tensor (an integer buffer) is never averaged: it is copied from the endpoint α is
    nearer to (the late one at α = 0.5), which keeps both endpoints exact when the buffers differ.
    """
    if not (early.is_floating_point() and late.is_floating_point()):
        return (early if alpha < 0.5 else late).clone()
    if alpha == 0:
        return early.to(late.dtype, copy=True)
    if alpha == 1:
        return late.clone()
    compute = torch.promote_types(torch.promote_types(early.dtype, late.dtype), torch.float32)
    return torch.lerp(early.to(compute), late.to(compute), alpha).to(late.dtype)


def _read(file: Path, name: str) -> torch.Tensor:
    with safe_open(file, framework="pt") as handle:
        return handle.get_tensor(name)


def _tensor_nbytes(file: Path, name: str) -> int:
    with safe_open(file, framework="pt") as handle:
        view = handle.get_slice(name)
        shape, dtype = view.get_shape(), view.get_dtype()
    numel = 1
    for dim in shape:
        numel *= dim
    return numel * _DTYPE_BYTES.get(dtype, 4)


_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
                "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def plan_shards(late_index: dict[str, Path], max_shard_size: int | str) -> dict[str, list[str]]:
    """Output file name -> tensor names, in the late model's tensor order."""
    sizes = {name: TensorInfo(_tensor_nbytes(file, name)) for name, file in late_index.items()}
    split = split_state_dict_into_shards_factory(
        sizes, get_storage_size=lambda info: info.nbytes, filename_pattern="model{suffix}.safetensors",
        max_shard_size=max_shard_size,
    )
    return split.filename_to_tensors


def check_output(out: Path, overwrite: bool, *inputs: Path) -> None:
    """Refuse to replace an existing output (unless asked) and never write over an input."""
    if out.exists() and not overwrite:
        raise ConfigError(f"Output '{out}' already exists. Choose another --out, or pass --overwrite to replace it "
                          "(it is replaced only once the new result is complete).")
    if any(out.resolve() == p.resolve() for p in inputs):
        raise ConfigError(f"Output '{out}' is one of the input checkpoints; choose another --out.")


def interpolate_dirs(early: Path, late: Path, alpha: float, out: Path, overwrite: bool = False,
                     max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE) -> dict[str, object]:
    """Write the interpolated model to ``out`` (a plain HF directory) and return its merge record.

    The non-weight files (config, generation config, tokenizer) come from ``late``. ``out`` appears
    only complete: it is built in a temporary sibling and moved into place at the end. Raises
    :class:`litplug.api.ConfigError` when the two models are not interpolable.
    """
    early, late, out = Path(early), Path(late), Path(out)
    check_output(out, overwrite, early, late)
    check_compatible(early, late)
    early_index, late_index = tensor_index(early), tensor_index(late)
    shards = plan_shards(late_index, max_shard_size)
    copied_from_endpoint: list[str] = []
    with atomic_directory(out, overwrite=overwrite) as tmp:
        weight_map: dict[str, str] = {}
        total = 0
        for filename, names in shards.items():
            shard: dict[str, torch.Tensor] = {}
            for name in names:
                a, b = _read(early_index[name], name), _read(late_index[name], name)
                if not (a.is_floating_point() and b.is_floating_point()) and not torch.equal(a, b):
                    copied_from_endpoint.append(name)
                shard[name] = interpolate_tensor(a, b, alpha)
                total += shard[name].numel() * shard[name].element_size()
                weight_map[name] = filename
                del a, b
            save_file(shard, tmp / filename, metadata={"format": "pt"})
            del shard
        if len(shards) > 1:
            (tmp / WEIGHT_INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                                       indent=2))
        for item in sorted(late.iterdir()):
            if item.is_file() and item.suffix != ".safetensors" and item.name not in (WEIGHT_INDEX, MERGE_RECORD):
                shutil.copy2(item, tmp / item.name)
        record = {"method": "wise-ft", "alpha": alpha, "early": str(early.resolve()), "late": str(late.resolve()),
                  "formula": "(1 - alpha) * early + alpha * late", "num_tensors": len(weight_map),
                  "non_float_tensors_differing": copied_from_endpoint, "litplug_version": litplug_version}
        (tmp / MERGE_RECORD).write_text(json.dumps(record, indent=2))
    return record
