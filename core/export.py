"""The one export: what the end of training writes, and what a plugin writes mid-run (WiSE-FT's early
checkpoints, SPT's snapshots), so the two can never disagree."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litplug.weights import export_hf

if TYPE_CHECKING:
    import pluggy
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def export(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, hooks: pluggy.HookRelay, config: Any,
           target: Path | str, in_place: bool = False) -> Path:
    """The plugins' ``export_model`` changes, then a plain HF safetensors directory at ``target`` (atomic).

    The changes are made to a copy, so training can continue on the untouched model; the end of
    training passes ``in_place=True`` (the model is done) to spare the copy.
    """
    if hooks.export_model.get_hookimpls():
        if not in_place:
            model = copy.deepcopy(model)
        hooks.export_model(model=model, tokenizer=tokenizer, config=config)
    return export_hf(model, tokenizer, Path(target))
