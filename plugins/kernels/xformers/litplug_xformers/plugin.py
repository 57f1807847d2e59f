"""The ``xformers`` plugin: route the model's attention through xformers (CUDA) or SDPA (elsewhere)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig
from transformers import PreTrainedModel

from litplug.api import ConfigError, hookimpl
from litplug_xformers import attention, backend
from litplug_xformers.config import XformersConfig

log = logging.getLogger("litplug.xformers")


def unsupported_feature(model: PreTrainedModel, seq_len: int) -> str | None:
    """What the model's attention does that this path cannot: soft-capped attention scores (Gemma-2),
    or a sliding window shorter than the run's sequences (the kernel call is plain causal)."""
    text = model.config.get_text_config()
    cap = getattr(text, "attn_logit_softcapping", None)
    if cap:
        return f"attention soft-capping (attn_logit_softcapping={cap})"
    window = getattr(text, "sliding_window", None)
    uses_window = getattr(text, "use_sliding_window", True) is not False
    if isinstance(window, int) and uses_window and 0 < window < seq_len:
        return f"sliding-window attention (sliding_window={window} < data.seq_len={seq_len})"
    return None


def _strict_error(problem: str) -> ConfigError:
    return ConfigError(
        f"plugins.xformers.strict is true, but xformers' memory-efficient attention cannot run: {problem}. Run "
        f"on a CUDA machine with `{backend.INSTALL_HINT}`, or set plugins.xformers.strict=false to use "
        "PyTorch SDPA instead."
    )


class XformersPlugin:
    """Sets ``config._attn_implementation = "xformers"``; the function falls back to SDPA off CUDA."""

    config_class = XformersConfig
    litplug_requires = ">=0.1,<0.2"
    conformance = ({"config": {}, "overrides": ()},)

    def __init__(self, config: XformersConfig) -> None:
        self.config = config

    @hookimpl
    def check_config(self, config: DictConfig) -> None:
        """``strict``: refuse to start (also in ``litplug config``) unless xformers' CUDA kernel can run on this
        machine; ``configure_model`` then checks ``trainer.accelerator``."""
        if self.config.strict and (problem := backend.cuda_problem()):
            raise _strict_error(problem)  # before the run directory exists

    @hookimpl
    def configure_model(self, model: PreTrainedModel, config: DictConfig) -> None:
        if feature := unsupported_feature(model, config.data.seq_len):
            raise ConfigError(
                f"plugins.xformers: this {model.config.model_type} model uses {feature}, which the xformers "
                "attention path does not implement (neither does the SDPA function it falls back to), so its "
                "attention would be computed wrongly. Remove plugins.xformers for this model (transformers then "
                "picks an attention that supports it)."
            )
        problem = backend.cuda_problem(config.trainer.accelerator)
        if problem and self.config.strict:
            raise _strict_error(problem)
        if problem:
            log.warning("litplug-xformers: %s; attention falls back to PyTorch SDPA.", problem)
        attention.register(None if problem else backend.xformers_ops())
        model.set_attn_implementation(attention.ATTN_IMPLEMENTATION)
