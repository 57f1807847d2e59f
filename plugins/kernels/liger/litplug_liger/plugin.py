"""The ``liger`` plugin: the exclusive ``lm_loss`` hook and kernel patching in ``configure_model``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from transformers import PreTrainedModel

from litplug import hookimpl
from litplug.errors import ConfigError
from litplug_liger import backend
from litplug_liger.chunked_ce import IGNORE_INDEX, chunked_linear_cross_entropy
from litplug_liger.config import LigerConfig
from litplug_liger.patching import patch_model

log = logging.getLogger("litplug.liger")


def _strict_error(problem: str) -> ConfigError:
    return ConfigError(
        f"plugins.liger.strict is true, but Liger's CUDA kernels cannot run: {problem}. Run on a CUDA machine "
        f"with `{backend.INSTALL_HINT}`, or set plugins.liger.strict=false to train with the PyTorch fallback "
        "(chunked linear cross-entropy, unpatched RMSNorm/RoPE/SwiGLU)."
    )


class LigerPlugin:
    """Fused linear cross-entropy from the hidden states (Liger on CUDA, chunked PyTorch elsewhere)."""

    config_class = LigerConfig
    litplug_requires = ">=0.1,<0.2"

    def __init__(self, config: LigerConfig) -> None:
        self.config = config
        self.fused_loss: Callable[..., torch.Tensor] | None = None  # Liger's kernel, once CUDA is confirmed
        if config.strict and (problem := backend.cuda_problem()):
            raise _strict_error(problem)  # before the run directory exists

    @hookimpl
    def configure_model(self, model: PreTrainedModel, config: DictConfig) -> None:
        problem = backend.cuda_problem(config.trainer.accelerator)
        if problem:
            if self.config.strict:
                raise _strict_error(problem)
            log.warning("litplug-liger: %s; lm_loss falls back to PyTorch's chunked linear cross-entropy and "
                        "RMSNorm/RoPE/SwiGLU stay unpatched.", problem)
            return
        self.fused_loss = backend.fused_linear_cross_entropy()
        kernels = {"rms_norm": self.config.rms_norm, "rope": self.config.rope, "swiglu": self.config.swiglu}
        if any(kernels.values()):
            patch_model(model, backend.patch_functions(), kernels)

    @hookimpl
    def lm_loss(self, hidden: torch.Tensor, lm_head: torch.nn.Module, labels: torch.Tensor) -> torch.Tensor | None:
        if not self.config.fused_linear_cross_entropy:
            return None  # the core's plain cross-entropy
        rows, targets = hidden.flatten(0, 1), labels.flatten()
        bias = getattr(lm_head, "bias", None)
        if self.fused_loss is not None and rows.is_cuda:
            return self.fused_loss(rows, lm_head.weight, targets, bias=bias, ignore_index=IGNORE_INDEX)
        return chunked_linear_cross_entropy(rows, lm_head.weight, bias, targets, self.config.chunk_rows)
