"""Options of the ``sift_masks`` plugin (``plugins.sift_masks`` in a run config)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Named parts of any HF causal LM, resolved through the model's own accessors (so they work whatever the
# architecture calls the tensors): the input embeddings and the output projection (LM head).
FREEZE_ALIASES = ("embeddings", "lm_head")
PAPER_FREEZE = ["embeddings", "lm_head"]  # the paper (App. B): embeddings and LM head frozen, all hidden layers trained


@dataclass
class SiftConfig:
    sign_seed: int = 0  # public seed of the global sign vector v; every task of one store shares it
    base_model: str | None = None  # theta_0 from this HF directory; default: the model as built (model.path)
    # parameters kept at theta_0 (tau = 0, outside every mask): "embeddings", "lm_head", or fnmatch patterns
    freeze: list[str] = field(default_factory=lambda: list(PAPER_FREEZE))
    reset_momentum: bool = False  # [U] also zero Adam's first moment where the projection resets an entry

    def __post_init__(self) -> None:
        if isinstance(self.sign_seed, bool) or not isinstance(self.sign_seed, int) or self.sign_seed < 0:
            raise ValueError(f"sign_seed must be an integer >= 0 (got {self.sign_seed!r})")
        if self.base_model is not None and not str(self.base_model).strip():
            raise ValueError("base_model must be a directory path or null")
        bad = [p for p in self.freeze if not isinstance(p, str) or not p]
        if bad:
            raise ValueError(f"freeze must be a list of non-empty name patterns (got {bad!r})")
