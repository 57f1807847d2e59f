"""The litplug plugin: a training callback that keeps early checkpoints, and the ``wise-ft`` merge."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from litplug.api import ConfigError, hookimpl
from litplug_wise_ft.config import WiseFTConfig

if TYPE_CHECKING:  # Lightning is imported only when a run asks for the callback: `litplug merge` stays light
    from lightning.pytorch import Callback
    from omegaconf import DictConfig

# The conformance harness's settings: keep and score every other step of the tiny run.
CONFORMANCE_CONFIG = {"keep_steps": [0, 2, 4], "score_every_n_steps": 2, "score_n": 4, "score_k": [1, 2],
                      "score_num_examples": 4, "select_metric": "pass@2", "select_min_step": 0,
                      "select_max_step": 2}


class WiseFTPlugin:
    """WiSE-FT (arXiv 2504.10478): no loss or model change; it only acts on checkpoints."""

    config_class = WiseFTConfig
    litplug_requires = ">=0.1,<0.2"
    conformance = ({"config": CONFORMANCE_CONFIG, "overrides": ()},)

    def __init__(self, config: WiseFTConfig) -> None:
        self.config = config

    @hookimpl
    def check_config(self, config: DictConfig) -> None:
        c = self.config
        late = [s for s in c.keep_steps if s > config.trainer.max_steps]
        if late:
            raise ConfigError(f"plugins.wise_ft.keep_steps has step(s) {late} after the last step "
                              f"(trainer.max_steps={config.trainer.max_steps}); they would never be kept.")
        if c.score_every_n_steps and c.select_min_step > config.trainer.max_steps:
            raise ConfigError(f"plugins.wise_ft.select_min_step={c.select_min_step} is after the last step "
                              f"(trainer.max_steps={config.trainer.max_steps}), so no checkpoint could be best.")
        if c.score_every_n_steps:  # at start-up, before the run directory exists (not only at on_train_start)
            from omegaconf import OmegaConf

            from litplug_wise_ft.sources import pick_source

            pick_source([OmegaConf.to_object(s) for s in config.data.sources], c.score_source)

    @hookimpl
    def callbacks(self, config: DictConfig) -> list[Callback] | None:
        c = self.config
        if not c.keep_steps and not c.score_every_n_steps:
            print("wise_ft: neither keep_steps nor score_every_n_steps is set, so no early checkpoint is kept.",
                  flush=True)
            return None
        from litplug_wise_ft.keeper import EarlyCheckpointKeeper

        return [EarlyCheckpointKeeper(c, config)]

    @hookimpl
    def merge_methods(self) -> dict[str, Callable[[list[str]], int]]:
        from litplug_wise_ft.cli import main

        return {"wise-ft": main}
