"""Checks of ``plugins.fsp`` against the rest of the run config (the sequence length).

The plugin runs these from its ``check_config`` hook: at the start of every run (before the run
directory is created) and in ``litplug config``.
"""

from __future__ import annotations

from omegaconf import DictConfig

from litplug.api import ConfigError
from litplug_fsp.config import FSPConfig


def check_run_config(options: FSPConfig, config: DictConfig) -> None:
    seq_len = config.data.seq_len
    if options.objective == "bce" and options.tau >= seq_len:
        raise ConfigError(f"plugins.fsp.tau = {options.tau} must be smaller than data.seq_len = {seq_len}: no "
                          f"position would have a future window. Lower plugins.fsp.tau or raise data.seq_len.")
    if options.objective == "mtp" and options.n_heads + 1 >= seq_len:
        raise ConfigError(f"plugins.fsp.n_heads = {options.n_heads} predicts up to x[t+{options.n_heads + 1}], "
                          f"which needs data.seq_len > {options.n_heads + 1} (it is {seq_len}).")
