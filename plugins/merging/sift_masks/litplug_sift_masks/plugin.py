"""The ``sift_masks`` plugin: sign-fixed finetuning in a run, and the store/merge verbs."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from litplug.api import ConfigError, StepContext, hookimpl
from litplug_sift_masks.config import FREEZE_ALIASES, SiftConfig
from litplug_sift_masks.projection import SignProjector


def frozen_names(model: PreTrainedModel, patterns: list[str]) -> list[str]:
    """The parameter names ``plugins.sift_masks.freeze`` keeps at theta_0.

    ``embeddings`` is the model's input embedding (``get_input_embeddings()``), ``lm_head`` its output
    projection (``get_output_embeddings()``; with tied embeddings both are one tensor); any other entry is
    an fnmatch pattern of parameter names. An entry that matches nothing is a config error.
    """
    named = dict(model.named_parameters())
    by_id = {id(p): n for n, p in named.items()}  # named_parameters() lists a tied tensor once
    out: list[str] = []
    for pattern in patterns:
        if pattern in FREEZE_ALIASES:
            module = model.get_input_embeddings() if pattern == "embeddings" else model.get_output_embeddings()
            hits = [by_id[id(p)] for p in (module.parameters() if module is not None else []) if id(p) in by_id]
        else:
            hits = [n for n in named if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"plugins.sift_masks.freeze: '{pattern}' matches no parameter. Use "
                              f"{' or '.join(FREEZE_ALIASES)}, or a pattern of names like: "
                              f"{', '.join(sorted(named)[:4])}.")
        out += [n for n in hits if n not in out]
    return out


class SiftMasksPlugin:
    """Captures theta_0 at ``configure_model`` and projects every optimizer step onto the signs of v.

    List it last under ``plugins:`` when another plugin changes the model's parameters in
    ``configure_model`` (theta_0 is the model as sift_masks sees it).
    """

    config_class = SiftConfig
    litplug_requires = ">=0.1,<0.2"
    conformance = ({"config": {"sign_seed": 3, "reset_momentum": True}, "overrides": ()},)

    def __init__(self, config: SiftConfig) -> None:
        self.config = config
        self.projector: SignProjector | None = None
        self._checked = False

    @hookimpl
    def configure_model(self, model: PreTrainedModel, config: DictConfig) -> None:
        named = dict(model.named_parameters())
        for name in frozen_names(model, self.config.freeze):
            named[name].requires_grad_(False)
        trainable = {n: p for n, p in named.items() if p.requires_grad}
        self.projector = SignProjector(self._reference(trainable), self.config.sign_seed)
        self._checked = False

    def _reference(self, trainable: dict[str, torch.nn.Parameter]) -> dict[str, torch.Tensor]:
        """theta_0: the model as built, or the tensors of ``base_model``."""
        if self.config.base_model is None:
            return {n: p.detach() for n, p in trainable.items()}
        from litplug_sift_masks.errors import StoreError
        from litplug_sift_masks.hfdir import TensorSource, resolve_model_dir

        try:
            with TensorSource(resolve_model_dir(self.config.base_model)) as base:
                missing = sorted(set(trainable) - set(base.names))
                wrong = sorted(n for n in set(trainable) & set(base.names) if base.shape(n) != trainable[n].shape)
                if missing or wrong:
                    raise ConfigError(f"plugins.sift_masks.base_model '{self.config.base_model}' does not fit the "
                                      f"model (missing tensors: {missing[:3]}, other shapes: {wrong[:3]}).")
                return {n: base.get(n).to(trainable[n].dtype) for n in trainable}
        except StoreError as exc:
            raise ConfigError(f"plugins.sift_masks.base_model: {exc}") from None

    @hookimpl
    def after_optimizer_step(self, ctx: StepContext, step: int) -> None:
        if self.projector is None:
            return
        named = dict(ctx.model.named_parameters())
        if not self._checked:  # once per run (a resumed run starts past step 1)
            self.projector.check(named)
            self._checked = True
        optimizer = ctx.optimizer if self.config.reset_momentum else None
        reset, nonzero, total = self.projector.project_(named.items(), optimizer)
        if total:  # ctx.log is a no-op outside a trainer
            ctx.log("sift/density", nonzero / total)
            ctx.log("sift/reset_fraction", reset / total)

    @hookimpl
    def merge_methods(self) -> dict[str, Callable[[list[str]], int]]:
        from litplug_sift_masks.cli import merge_task_arithmetic, merge_ties

        return {"task-arithmetic": merge_task_arithmetic, "ties": merge_ties}

    @hookimpl
    def cli_commands(self, subparsers: Any) -> None:
        from litplug_sift_masks.cli import add_sift_parser

        add_sift_parser(subparsers)
