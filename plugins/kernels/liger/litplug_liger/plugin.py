"""The ``liger`` plugin: the exclusive ``lm_loss`` hook, kernel patching in ``configure_model``, and the
``strict`` check in ``check_config``."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from transformers import PreTrainedModel

from litplug.api import ConfigError, OutputHead, head_transform, hookimpl
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
    conformance = ({"config": {"chunk_rows": 4}, "overrides": ()},)  # several chunks even on the tiny batches

    def __init__(self, config: LigerConfig) -> None:
        self.config = config
        self.fused_loss: Callable[..., torch.Tensor] | None = None  # Liger's kernel, once CUDA is confirmed

    @hookimpl
    def check_config(self, config: DictConfig) -> None:
        """``strict``: refuse to start (also in ``litplug config``) unless Liger's CUDA kernels can run on this
        machine; ``configure_model`` then checks ``trainer.accelerator``."""
        if self.config.strict and (problem := backend.cuda_problem()):
            raise _strict_error(problem)  # before the run directory exists

    @hookimpl
    def configure_model(self, model: PreTrainedModel, config: DictConfig) -> None:
        problem = backend.cuda_problem(config.trainer.accelerator)
        _, softcap = head_transform(model.config)
        if problem and softcap is not None and self.config.fused_linear_cross_entropy:
            log.warning("litplug-liger: this %s model soft-caps its logits (final_logit_softcapping=%g), which "
                        "PyTorch's chunked linear cross-entropy cannot apply; off CUDA the loss materialises the "
                        "logits instead (exact, but without the memory saving).", model.config.model_type, softcap)
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
    def lm_loss(self, hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor) -> torch.Tensor | None:
        """The model's own loss, fused: a logit scale is folded into the rows and the bias
        (``s * (hW + b) = (s h) W + s b``); a soft-cap is Liger's ``softcap`` argument."""
        if not self.config.fused_linear_cross_entropy:
            return None  # the core's plain cross-entropy
        rows, targets = hidden.flatten(0, 1), labels.flatten()
        bias = head.bias
        if head.scale != 1.0:
            rows = rows * head.scale
            bias = bias * head.scale if bias is not None else None
        if self.fused_loss is not None and rows.is_cuda:
            return self.fused_loss(rows, head.weight, targets, bias=bias, ignore_index=IGNORE_INDEX,
                                   softcap=head.softcap)
        if head.softcap is not None:  # PyTorch's chunked loss has no soft-cap: exact, materialised logits
            return F.cross_entropy(head.logits(hidden).float().flatten(0, 1), targets, ignore_index=IGNORE_INDEX)
        return chunked_linear_cross_entropy(rows, head.weight, bias, targets, self.config.chunk_rows)
