"""The plugin's options (``plugins.spt``); a ValueError here becomes a ConfigError (exit code 2)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class SPTConfig:
    delta: float = 0.05  # share of training sequences drawn from the domain source (0 = standard pretraining)
    domain: str = "domain"  # name of the domain source in data.sources; every other source is "general"
    domain_covers_run: bool = True  # `domain` task: lengthen its (cycled) train split to last the whole run
    early_stopping: bool = False  # stop on val/<domain>/loss and export the best checkpoint (finetuning)
    patience: int = 5  # validation checks without improvement before stopping [U]
    min_delta: float = 0.0  # smallest decrease of val/<domain>/loss that counts as an improvement
    snapshot_steps: list[int] = field(default_factory=list)  # also export plain HF models at these steps
    test_loss: bool = True  # at the end, log test/<source>/loss on every source's test split

    def __post_init__(self) -> None:
        if not isinstance(self.delta, (int, float)) or math.isnan(self.delta) or not 0.0 <= self.delta <= 1.0:
            raise ValueError(f"plugins.spt.delta must be a fraction in [0, 1] (got {self.delta!r}); "
                             "e.g. 0.05 mixes 5% domain sequences into training.")
        if not self.domain:
            raise ValueError("plugins.spt.domain must name the domain source in data.sources.")
        if self.patience < 1:
            raise ValueError(f"plugins.spt.patience must be at least 1 (got {self.patience}).")
        if self.min_delta < 0:
            raise ValueError(f"plugins.spt.min_delta must be >= 0 (got {self.min_delta}).")
        bad = [s for s in self.snapshot_steps if s < 1]
        if bad:
            raise ValueError(f"plugins.spt.snapshot_steps must be positive step numbers (got {bad}).")
