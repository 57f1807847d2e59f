"""The litplug hooks of S2D: build the spectral state, refresh it at the start of every m-th step, add the
penalty term, add the report verb.

Heavy imports (transformers, the regulariser) happen inside the hooks, so listing plugins stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litplug.api import hookimpl
from litplug_s2d.config import S2DConfig

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from litplug.api import StepContext

AUX_NAME = "s2d"


class S2DPlugin:
    """Adds lambda/(n+1) * sum_{i<=k} sigma_i^(n+1) of the selected layers as the loss term ``s2d``."""

    config_class = S2DConfig
    litplug_requires = ">=0.1,<0.2"
    # the settings the conformance harness trains it with: tau low enough that layers of the tiny model are
    # selected, m small enough that a 4-step run refreshes twice (steps 0 and 3), so the resume check reuses
    # the checkpointed vectors at step 2 and refreshes at 3
    conformance = ({"config": {"lam": 0.05, "tau": 0.05, "refresh_every": 3}, "overrides": ()},)

    def __init__(self, config: S2DConfig) -> None:
        self.cfg = config

    @hookimpl
    def configure_model(self, model: PreTrainedModel) -> dict[str, torch.nn.Module]:
        """The candidates are fixed here (a pattern matching nothing stops the run, exit code 2)."""
        from litplug_s2d.layers import match_layers
        from litplug_s2d.regularizer import SpectralDecay

        return {AUX_NAME: SpectralDecay(model, match_layers(model, self.cfg.layers), self.cfg)}

    @hookimpl
    def on_step_start(self, ctx: StepContext) -> None:
        """SVD + selection refresh at the start of every m-th optimizer step, before the optimizer moves W
        (``pcdr`` captures its activations from the step's first micro-batch)."""
        decay = ctx.aux[AUX_NAME]
        step = ctx.global_step
        if decay.due(step):
            decay.refresh(ctx.model, step, ctx.batch)

    @hookimpl
    def extra_losses(self, ctx: StepContext) -> dict[str, torch.Tensor] | None:
        """The penalty from the cached vectors, in training only."""
        if not ctx.training:
            return None  # validation reports the LM loss only
        decay = ctx.aux[AUX_NAME]
        value, sigma_max = decay(ctx.model)
        ctx.log("train/s2d_sigma_max", sigma_max)
        ctx.log("train/s2d_selected_layers", float(sum(k > 0 for k in decay.k_targets)))
        return {AUX_NAME: value}

    @hookimpl
    def cli_commands(self, subparsers: Any) -> None:
        from litplug_s2d.cli import add_parser

        add_parser(subparsers)
