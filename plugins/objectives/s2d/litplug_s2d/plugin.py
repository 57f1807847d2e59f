"""The litplug hooks of S2D: build the spectral state, add the penalty term, add the report verb.

Heavy imports (transformers, the regulariser) happen inside the hooks, so listing plugins stays cheap.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from litplug import hookimpl
from litplug_s2d.config import S2DConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

AUX_NAME = "s2d"


class S2DPlugin:
    """Adds lambda/(n+1) * sum_{i<=k} sigma_i^(n+1) of the selected layers as the loss term ``s2d``."""

    config_class = S2DConfig
    litplug_requires = ">=0.1,<0.2"

    def __init__(self, config: S2DConfig) -> None:
        self.cfg = config

    @hookimpl
    def configure_model(self, model: PreTrainedModel) -> dict[str, torch.nn.Module]:
        """The candidates are fixed here (a pattern matching nothing stops the run, exit code 2)."""
        from litplug_s2d.layers import match_layers
        from litplug_s2d.regularizer import SpectralDecay

        return {AUX_NAME: SpectralDecay(model, match_layers(model, self.cfg.layers), self.cfg)}

    @hookimpl
    def extra_losses(self, module: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        """Refresh at the start of every m-th step (before the optimizer moves W), then the penalty."""
        if not module.training:
            return None  # validation reports the LM loss only
        decay = module.aux[AUX_NAME]
        step = int(module.global_step)
        if decay.due(step):
            decay.refresh(module.model, step, batch)
        value, sigma_max = decay(module.model)
        if getattr(module, "_trainer", None) is not None:
            module.log("train/s2d_sigma_max", sigma_max, batch_size=1)
            module.log("train/s2d_selected_layers", float(sum(k > 0 for k in decay.k_targets)), batch_size=1)
        return {AUX_NAME: value}

    @hookimpl
    def cli_commands(self, subparsers: argparse._SubParsersAction) -> None:
        from litplug_s2d.cli import add_parser

        add_parser(subparsers)
