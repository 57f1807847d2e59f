"""The ``spt`` plugin: hook implementations only; the logic lives in the modules they call."""

from __future__ import annotations

import argparse

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

import litplug
from litplug.data.sources import SourceSpec
from litplug.errors import ConfigError
from litplug_spt.callbacks import SPTMonitor, early_stopping_callbacks
from litplug_spt.config import SPTConfig
from litplug_spt.mixture import apply_mixture, record_effective_sources


class SPTPlugin:
    """Specialized pretraining: domain share ``delta`` from step one; early-stopped finetuning."""

    config_class = SPTConfig
    litplug_requires = ">=0.1,<0.2"

    def __init__(self, config: SPTConfig) -> None:
        self.config = config

    @litplug.hookimpl
    def synthetic_tasks(self) -> list[type]:
        from litplug_spt.grammars import Domain, General

        return [General, Domain]

    @litplug.hookimpl
    def data_sources(self, sources: list[SourceSpec], config: DictConfig) -> None:
        if self.config.early_stopping and not config.trainer.val_check_interval:
            raise ConfigError("plugins.spt.early_stopping needs periodic validation: set trainer.val_check_interval "
                              "to a number of steps (e.g. 20).")
        apply_mixture(sources, self.config, config)
        record_effective_sources(config, sources)

    @litplug.hookimpl
    def callbacks(self, config: DictConfig) -> list[Callback]:
        if not self.config.early_stopping:
            return [SPTMonitor(self.config, config)]
        stopper, best = early_stopping_callbacks(self.config, config)
        return [SPTMonitor(self.config, config, best=best), stopper, best]

    @litplug.hookimpl
    def cli_commands(self, subparsers: argparse._SubParsersAction) -> None:
        from litplug_spt.cli import add_commands

        add_commands(subparsers)
