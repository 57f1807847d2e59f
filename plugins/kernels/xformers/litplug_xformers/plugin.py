"""The ``xformers`` plugin: route the model's attention through xformers (CUDA) or SDPA (elsewhere)."""

from __future__ import annotations

import logging

from omegaconf import DictConfig
from transformers import PreTrainedModel

from litplug import hookimpl
from litplug.errors import ConfigError
from litplug_xformers import attention, backend
from litplug_xformers.config import XformersConfig

log = logging.getLogger("litplug.xformers")


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

    def __init__(self, config: XformersConfig) -> None:
        self.config = config
        if config.strict and (problem := backend.cuda_problem()):
            raise _strict_error(problem)  # before the run directory exists

    @hookimpl
    def configure_model(self, model: PreTrainedModel, config: DictConfig) -> None:
        problem = backend.cuda_problem(config.trainer.accelerator)
        if problem and self.config.strict:
            raise _strict_error(problem)
        if problem:
            log.warning("litplug-xformers: %s; attention falls back to PyTorch SDPA.", problem)
        attention.register(None if problem else backend.xformers_ops())
        model.set_attn_implementation(attention.ATTN_IMPLEMENTATION)
