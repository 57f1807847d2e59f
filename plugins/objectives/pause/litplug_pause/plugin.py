"""The litplug hooks of the pause plugin: tokenizer/model surgery, batch transforms, generation."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from litplug.api import StepContext, hookimpl
from litplug_pause.config import PauseConfig
from litplug_pause.finetune import append_pauses
from litplug_pause.generation import append_to_prompts, never_emit
from litplug_pause.pretrain import insert_pauses, pause_slots
from litplug_pause.vocab import add_pause_token, ensure_embedding_row


def _seed(*parts: object) -> int:
    """A stable 63-bit seed from the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 1


class PausePlugin:
    """Pause tokens (arXiv 2310.02226): see the method card (README.md) for the four variants."""

    config_class = PauseConfig
    litplug_requires = ">=0.1,<0.2"
    # the settings the conformance harness trains it with: pauses inserted during (pre)training
    conformance = ({"config": {"mode": "pretrain", "pretrain_fraction": 0.2, "num_pauses": 2}, "overrides": ()},)

    def __init__(self, config: PauseConfig) -> None:
        self.config = config
        self._batch_key: tuple[Any, ...] | None = None  # (stage, step): counts micro-batches within it
        self._batch_index = 0

    def pause_id(self, tokenizer: PreTrainedTokenizerBase) -> int:
        return tokenizer.convert_tokens_to_ids(self.config.token)

    # -- setup --------------------------------------------------------------------------------------
    @hookimpl
    def configure_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        add_pause_token(tokenizer, self.config.token)

    @hookimpl
    def configure_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        ensure_embedding_row(model, tokenizer, self.pause_id(tokenizer))

    # -- training step ------------------------------------------------------------------------------
    @hookimpl
    def transform_batch(self, batch: dict[str, torch.Tensor], stage: str, ctx: StepContext) -> None:
        tokenizer = ctx.tokenizer
        pause_id, pad_id = self.pause_id(tokenizer), tokenizer.pad_token_id
        if self.config.mode == "finetune":
            append_pauses(batch, pause_id, pad_id, self.config.num_pauses)
            return
        rows, width = batch["input_ids"].shape
        slots = pause_slots(rows, width, self.config.pretrain_fraction, self.config.pretrain_sampling,
                            self._generator(stage, ctx))
        insert_pauses(batch, pause_id, pad_id, slots)

    def _generator(self, stage: str, ctx: StepContext) -> torch.Generator:
        """Pause positions depend only on (seed, rank, step, micro-batch), so a resumed run draws the
        same ones; validation reuses one pattern at every evaluation so its losses are comparable."""
        key = (stage, ctx.global_step)
        self._batch_index = self._batch_index + 1 if key == self._batch_key else 0
        self._batch_key = key
        step = ctx.global_step if stage == "train" else -1
        seed = _seed(ctx.config.run.seed, ctx.rank, stage, step, self._batch_index)
        return torch.Generator().manual_seed(seed)

    # -- generation ---------------------------------------------------------------------------------
    @hookimpl
    def prepare_generation(self, prompts: list[list[int]], tokenizer: PreTrainedTokenizerBase) -> None:
        append_to_prompts(prompts, self.pause_id(tokenizer), self.config.generation_pauses)

    @hookimpl
    def logits_processors(self, tokenizer: PreTrainedTokenizerBase) -> list[LogitsProcessor]:
        return [never_emit(self.pause_id(tokenizer))]

    # -- CLI ----------------------------------------------------------------------------------------
    @hookimpl
    def cli_commands(self, subparsers: Any) -> None:
        from litplug_pause.cli import add_parser

        add_parser(subparsers)

