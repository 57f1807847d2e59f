"""Weights on disk: the exported HF directory, written atomically, and safetensors readers that
merge plugins use to stream one tensor at a time instead of holding whole models."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open

if TYPE_CHECKING:  # merges import this module: keep transformers out of their start-up
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``target``; it replaces ``target`` only if the block succeeds,
    so a crash never leaves a half-written directory behind."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"'{target}' already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> Path:
    """Save a plain HF directory (safetensors) that ``AutoModelForCausalLM.from_pretrained`` loads
    without litplug installed."""
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards 1/1" bar per export is noise in every log
    try:
        with atomic_directory(target, overwrite=True) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    return target


def safetensors_files(model_dir: Path) -> list[Path]:
    """The weight files of an HF directory (sharded or not), in index order."""
    model_dir = Path(model_dir)
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [model_dir / n for n in names]
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise FileNotFoundError(f"no safetensors weights in '{model_dir}'")
    return [single]


def tensor_index(model_dir: Path) -> dict[str, Path]:
    """tensor name -> the file holding it."""
    out: dict[str, Path] = {}
    for file in safetensors_files(model_dir):
        with safe_open(file, framework="pt") as handle:
            out.update(dict.fromkeys(handle.keys(), file))
    return out


def iter_tensors(model_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) pairs, loaded one at a time."""
    for file in safetensors_files(model_dir):
        with safe_open(file, framework="pt") as handle:
            for name in handle.keys():
                yield name, handle.get_tensor(name)
