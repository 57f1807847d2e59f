"""The ``spt`` plugin: hook implementations only; the logic lives in the modules they call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litplug.api import ConfigError, SourceSpec, StepContext, hookimpl
from litplug_spt.config import SPTConfig
from litplug_spt.mixture import apply_mixture, record_effective_sources

if TYPE_CHECKING:  # Lightning is imported only when a run asks for the callbacks
    from lightning.pytorch.callbacks import Callback
    from omegaconf import DictConfig

    from litplug_spt.callbacks import SPTMonitor

# The conformance harness's data: a general + domain pair of 17-token documents (tests/conftest.py's PAIR).
_PAIR = (
    'data.sources=[{"task": "general", "params": {"length": 15}, "num_train": 400, "num_validation": 16, '
    '"num_test": 16, "weight": 1.0}, {"task": "domain", "params": {"length": 15, "num_documents": 12}, '
    '"num_train": 48, "num_validation": 16, "num_test": 16, "weight": 1.0}]',
    "data.seq_len=16",
)


class SPTPlugin:
    """Specialized pretraining: domain share ``delta`` from step one; early-stopped finetuning."""

    config_class = SPTConfig
    litplug_requires = ">=0.1,<0.2"
    conformance = (
        {"config": {"delta": 0.25}, "overrides": _PAIR},
        {"config": {"delta": 1.0, "early_stopping": True, "patience": 2},
         "overrides": (*_PAIR, "trainer.val_check_interval=1")},
    )

    def __init__(self, config: SPTConfig) -> None:
        self.config = config
        self.monitor: SPTMonitor | None = None  # this run's monitor, for final_metrics

    @hookimpl
    def synthetic_tasks(self) -> list[type]:
        from litplug_spt.grammars import Domain, General

        return [General, Domain]

    @hookimpl
    def check_config(self, config: DictConfig) -> None:
        if self.config.early_stopping and not config.trainer.val_check_interval:
            raise ConfigError("plugins.spt.early_stopping needs periodic validation: set trainer.val_check_interval "
                              "to a number of steps (e.g. 20).")

    @hookimpl
    def data_sources(self, sources: list[SourceSpec], config: DictConfig) -> None:
        apply_mixture(sources, self.config, config)
        record_effective_sources(config, sources)

    @hookimpl
    def callbacks(self, config: DictConfig) -> list[Callback]:
        from litplug_spt.callbacks import SPTMonitor, early_stopping_callbacks

        if not self.config.early_stopping:
            self.monitor = SPTMonitor(self.config, config)
            return [self.monitor]
        stopper, best = early_stopping_callbacks(self.config, config)
        self.monitor = SPTMonitor(self.config, config, best=best)
        return [self.monitor, stopper, best]

    @hookimpl
    def final_metrics(self, ctx: StepContext, metrics: dict[str, float]) -> dict[str, float] | None:
        """The best step and loss (early stopping) and ``test/<source>/loss``, computed at the end of training."""
        return dict(self.monitor.final) if self.monitor is not None else None

    @hookimpl
    def cli_commands(self, subparsers: Any) -> None:
        from litplug_spt.cli import add_commands

        add_commands(subparsers)
