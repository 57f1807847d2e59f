"""Whether two HF model directories can be interpolated, checked from headers and small files only.

Interpolation is meaningful only between two points of the same parameter space: same tensor names,
same shapes, float tensors on both sides, same architecture and the same vocabulary (two tokenizers
with equal sizes but different token ids would silently average unrelated embedding rows). Every
check names the first mismatch so the user can see which model is not what they think it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from litplug.api import ConfigError, safetensors_files

# config.json fields that must agree; other fields (dtype, transformers_version, ...) may differ.
ARCHITECTURE_FIELDS = ("model_type", "architectures", "vocab_size", "hidden_size", "num_hidden_layers",
                       "tie_word_embeddings")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def check_model_dir(path: Path, role: str) -> dict[str, Path]:
    """The tensor index of an existing HF directory with safetensors weights, or a ConfigError.

    Every weight file is opened here (headers only), so a missing, truncated or corrupt file is
    named before anything is written, instead of failing mid-merge with safetensors' own error."""
    if not path.exists():
        raise ConfigError(f"{role} checkpoint '{path}' does not exist. Give an exported HF model directory "
                          "(a litplug run's export/ or a kept early checkpoint such as <run>/wise_ft/best).")
    if not path.is_dir():
        raise ConfigError(f"{role} checkpoint '{path}' is a file; give the HF model directory that holds it.")
    try:
        files = safetensors_files(path)
    except FileNotFoundError:
        raise ConfigError(f"{role} checkpoint '{path}' holds no safetensors weights (model.safetensors or "
                          "model.safetensors.index.json). Export it with save_pretrained(safe_serialization="
                          "True) or use a litplug run's export/ directory.") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{role} checkpoint '{path}' has an unreadable weight index "
                          f"'{path / 'model.safetensors.index.json'}' ({type(exc).__name__}: {exc}).") from None
    index: dict[str, Path] = {}
    for file in files:
        index.update(dict.fromkeys(_tensor_names(file, role), file))
    return index


def _tensor_names(file: Path, role: str) -> list[str]:
    if not file.is_file():
        raise ConfigError(f"{role} checkpoint: weight file '{file}' is missing (model.safetensors.index.json "
                          "lists it). Copy the complete checkpoint directory.")
    try:
        with safe_open(file, framework="pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"{role} checkpoint: weight file '{file}' cannot be read ({exc}); it is truncated or "
                          "not a safetensors file (an interrupted copy or download?). Copy or export the "
                          "checkpoint again.") from None


def _header(file: Path, name: str) -> tuple[list[int], str]:
    with safe_open(file, framework="pt") as handle:
        view = handle.get_slice(name)
        return list(view.get_shape()), view.get_dtype()


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("F", "BF"))


def _config(path: Path) -> dict[str, object]:
    file = path / "config.json"
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"'{file}' is not valid JSON: {exc}") from None


def _vocab(path: Path) -> dict[str, int] | None:
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True).get_vocab()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the tokenizer in '{path}' cannot be read: {exc}") from None


def check_compatible(early: Path, late: Path) -> None:
    """Raise ConfigError naming the first difference that makes interpolation meaningless."""
    early_index = check_model_dir(early, "--early")
    late_index = check_model_dir(late, "--late")
    for name in sorted(set(early_index) | set(late_index)):
        if name not in early_index or name not in late_index:
            has, lacks = ("--late", "--early") if name not in early_index else ("--early", "--late")
            raise ConfigError(f"Models differ in their tensors: '{name}' is in the {has} model but not in the "
                              f"{lacks} model ('{early}' vs '{late}'). Interpolate two checkpoints of the same "
                              "architecture (e.g. both with or both without tied embeddings).")
    for name in sorted(late_index):
        (shape_a, dtype_a), (shape_b, dtype_b) = _header(early_index[name], name), _header(late_index[name], name)
        if shape_a != shape_b:
            raise ConfigError(f"Tensor '{name}' has shape {shape_a} in --early '{early}' but {shape_b} in --late "
                              f"'{late}'; the models have different architectures or vocabulary sizes.")
        if _is_float(dtype_a) != _is_float(dtype_b):
            raise ConfigError(f"Tensor '{name}' is {dtype_a} in --early '{early}' but {dtype_b} in --late '{late}'; "
                              "a floating-point tensor cannot be interpolated with an integer one.")
    config_a, config_b = _config(early), _config(late)
    for key in ARCHITECTURE_FIELDS:
        if key in config_a and key in config_b and config_a[key] != config_b[key]:
            raise ConfigError(f"config.json field '{key}' is {config_a[key]!r} in --early '{early}' but "
                              f"{config_b[key]!r} in --late '{late}'; interpolate checkpoints of one model.")
    vocab_a, vocab_b = _vocab(early), _vocab(late)
    if vocab_a is not None and vocab_b is not None and vocab_a != vocab_b:
        token = next(iter(sorted(t for t in set(vocab_a) | set(vocab_b) if vocab_a.get(t) != vocab_b.get(t))))
        raise ConfigError(f"The tokenizers differ: token {token!r} has id {vocab_a.get(token)} in --early '{early}' "
                          f"but {vocab_b.get(token)} in --late '{late}'. Interpolating embeddings of different "
                          "vocabularies is meaningless; use checkpoints of one finetuning run.")
