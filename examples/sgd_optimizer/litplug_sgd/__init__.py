"""An optimizer as a plugin: SGD with momentum, through the exclusive ``configure_optimizer`` hook.

The core keeps the learning-rate schedule (``optim.schedule``, ``optim.warmup_steps``), gradient clipping,
checkpointing and resuming; the plugin only says which optimizer steps the parameters. Enable it with::

    plugins:
      sgd: {momentum: 0.9, nesterov: true}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from litplug.api import ConfigError, hookimpl


@dataclass
class SGDConfig:
    momentum: float = 0.9
    nesterov: bool = False
    lr: float | None = None  # None: the run's optim.lr

    def __post_init__(self) -> None:
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


class SGDPlugin:
    config_class = SGDConfig
    litplug_requires = ">=0.1,<0.2"
    conformance = {"config": {"momentum": 0.9, "nesterov": True}}

    def __init__(self, config: SGDConfig) -> None:
        self.config = config

    @hookimpl
    def check_config(self, config: Any) -> None:
        if self.config.nesterov and self.config.momentum == 0.0:
            raise ConfigError("plugins.sgd.nesterov needs a momentum > 0 (plugins.sgd.momentum).")

    @hookimpl
    def configure_optimizer(self, param_groups: list[dict[str, Any]], config: Any) -> torch.optim.Optimizer:
        lr = self.config.lr if self.config.lr is not None else config.optim.lr
        return torch.optim.SGD(param_groups, lr=lr, momentum=self.config.momentum, nesterov=self.config.nesterov)
