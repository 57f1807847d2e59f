"""The ``plugins.s2d`` section. Defaults are the paper's (tau=0.95, K_max=3, m=100, n=2, lambda=5e-4, layer
selection by the activation-based PCDR rule)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

SELECTIONS = ("pcdr", "sigma_mass", "all")


@dataclass
class S2DConfig:
    lam: float = 5e-4  # lambda: penalty weight, lambda/(n+1) * sum_{i<=k} sigma_i^(n+1)
    power: float = 2.0  # n: gradient lambda * sigma_i^n u_i v_i^T; n=1 is L2 decay of the top-k components
    tau: float = 0.95  # selection threshold in (0, 1]
    k_max: int = 3  # at most this many top singular values per layer are penalised
    refresh_every: int = 100  # m: SVD + selection refresh every m optimizer steps (at the step's start)
    # pcdr (the paper's activation-based rule, from the batch) | sigma_mass (spectral share) | all (no rule: every
    # candidate layer, its top min(k_max, rank) components; k_max=1 forces k=1 everywhere, power=1 with k_max >= rank
    # and refresh_every=1 is exact L2 decay lambda/2 ||W||^2 of the layers, a control)
    selection: str = "pcdr"
    mass_power: int = 1  # [U] sigma_mass share uses sigma^p: 1 = sum sigma (third-party), 2 = energy
    layers: list[str] = field(default_factory=lambda: ["*"])  # glob patterns over the HF model's module names
    pcdr_rows: int = 512  # pcdr: token rows sampled from the refresh step's batch
    pcdr_outlier_quantile: float = 0.999  # [U] pcdr: average PCDR over |activations| above this quantile

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"lam must be >= 0 (got {self.lam}).")
        if self.power <= 0:
            raise ValueError(f"power (n) must be > 0 (got {self.power}); the penalty is sigma^(n+1)/(n+1).")
        if not 0 < self.tau <= 1:
            raise ValueError(f"tau must be in (0, 1] (got {self.tau}).")
        if self.k_max < 1:
            raise ValueError(f"k_max must be at least 1 (got {self.k_max}).")
        if self.refresh_every < 1:
            raise ValueError(f"refresh_every (m) must be at least 1 (got {self.refresh_every}).")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)} (got '{self.selection}').")
        if self.mass_power not in (1, 2):
            raise ValueError(f"mass_power must be 1 or 2 (got {self.mass_power}).")
        if not self.layers:
            raise ValueError("layers must list at least one module-name pattern (e.g. ['*'] or ['*.mlp.*']).")
        if self.pcdr_rows < 1:
            raise ValueError(f"pcdr_rows must be at least 1 (got {self.pcdr_rows}).")
        if not 0 <= self.pcdr_outlier_quantile < 1:
            raise ValueError(f"pcdr_outlier_quantile must be in [0, 1) (got {self.pcdr_outlier_quantile}).")
        if self.power <= 1:
            warnings.warn(
                f"plugins.s2d.power = {self.power} <= 1: the decay is no longer selective (n=1 is plain L2 "
                "decay of the top-k components; the paper uses n=2 so that only dominant singular values shrink).",
                UserWarning, stacklevel=2,
            )
