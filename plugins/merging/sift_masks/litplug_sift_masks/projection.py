"""Sign-fixed tuning: after every optimizer step, reset each entry whose change from theta_0
disagrees with the global sign vector, so tau = theta - theta_0 always satisfies tau * v >= 0.

The projection runs *after* the step (not between backward and step as in the paper's Alg. 1),
so the final task vector is exactly consistent with its mask [S]. Adam runs on the parameters
unchanged; its state is not projected unless ``reset_momentum`` is set [U].
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from litplug.api import PluginError
from litplug_sift_masks.signs import sign_positive


class SignProjector:
    """Holds theta_0 and v (as a bool "v = +1" tensor) for the sifted parameters."""

    def __init__(self, reference: dict[str, torch.Tensor], seed: int) -> None:
        self.seed = seed
        self.theta0 = {n: t.detach().clone() for n, t in reference.items()}
        self.positive = {n: sign_positive(n, t.shape, seed) for n, t in reference.items()}

    def _on(self, name: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """theta_0 and v for ``name``, moved once to the parameter's device."""
        if self.theta0[name].device != device:
            self.theta0[name] = self.theta0[name].to(device)
            self.positive[name] = self.positive[name].to(device)
        return self.theta0[name], self.positive[name]

    def check(self, named: dict[str, torch.nn.Parameter]) -> None:
        missing = sorted(set(self.theta0) - set(named))
        changed = sorted(n for n in set(self.theta0) & set(named) if named[n].shape != self.theta0[n].shape)
        if missing or changed:
            raise PluginError(
                "sift_masks: the model's parameters no longer match theta_0 captured at configure_model "
                f"(missing: {missing[:3]}, reshaped: {changed[:3]}). A plugin listed after sift_masks "
                "changed the model; list sift_masks last under plugins:."
            )

    @torch.no_grad()
    def project_(self, named: Iterable[tuple[str, torch.nn.Parameter]],
                 optimizer: torch.optim.Optimizer | None = None) -> tuple[int, int, int]:
        """Project in place. Returns (entries reset this step, entries non-zero after, entries total)."""
        reset: torch.Tensor | int = 0
        nonzero: torch.Tensor | int = 0
        total = 0
        for name, param in named:
            if name not in self.theta0:
                continue
            theta0, positive = self._on(name, param.device)
            delta = param - theta0
            keep = torch.where(positive, delta > 0, delta < 0)
            moved = delta != 0
            param.copy_(torch.where(keep, param, theta0))
            if optimizer is not None:
                state = optimizer.state.get(param, {})
                if "exp_avg" in state:
                    state["exp_avg"].masked_fill_(~keep, 0.0)
            reset = reset + (moved & ~keep).sum()
            nonzero = nonzero + keep.sum()
            total += keep.numel()
        return int(reset), int(nonzero), total  # one device sync per step, not one per tensor
