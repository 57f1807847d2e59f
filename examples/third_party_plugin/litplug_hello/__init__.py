"""A minimal third-party plugin: one config dataclass, one hook.

Enable it in a run config with::

    plugins:
      hello: {weight: 1.0e-4}
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from litplug.api import StepContext, hookimpl


@dataclass
class HelloConfig:
    weight: float = 1e-4  # strength of the L2 penalty on the LM head

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")


class HelloPlugin:
    config_class = HelloConfig
    litplug_requires = ">=0.1,<0.2"

    def __init__(self, config: HelloConfig) -> None:
        self.config = config

    @hookimpl
    def extra_losses(self, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Logged as train/hello_l2 and added to the loss."""
        return {"hello_l2": self.config.weight * ctx.head.weight.pow(2).sum()}
