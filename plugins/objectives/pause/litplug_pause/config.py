"""The options of ``plugins.pause``; bad values raise ValueError, which the core reports as exit code 2."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("pretrain", "finetune")
SAMPLINGS = ("fixed", "bernoulli")


@dataclass
class PauseConfig:
    """Pause tokens (arXiv 2310.02226).

    ``mode: pretrain`` inserts pauses at random positions of every training row; ``mode: finetune``
    appends ``num_pauses`` pauses after each prompt and keeps the loss on the answer only. Generation
    (``litplug eval`` / ``generate`` and the end-of-run evaluation) appends ``inference_pauses``
    pauses in both modes and never emits one.
    """

    token: str = "<pause>"  # the pause token's string; must not already be an ordinary vocabulary token
    mode: str = "finetune"  # pretrain | finetune
    pretrain_fraction: float = 0.1  # share of the row's positions that become pauses (mode pretrain)
    pretrain_sampling: str = "fixed"  # [U] fixed: exactly round(fraction*T) slots a row; bernoulli: each slot
    num_pauses: int = 10  # M: pauses appended after the prompt when finetuning
    inference_pauses: int | None = None  # M_inf appended at generation; None = num_pauses

    def __post_init__(self) -> None:
        if not self.token or self.token != self.token.strip():
            raise ValueError(f"plugins.pause.token must be a non-empty string without surrounding spaces "
                             f"(got {self.token!r}).")
        if self.mode not in MODES:
            raise ValueError(f"plugins.pause.mode must be one of {', '.join(MODES)} (got {self.mode!r}).")
        if not 0.0 <= self.pretrain_fraction < 1.0:
            raise ValueError(f"plugins.pause.pretrain_fraction must be in [0, 1) (got {self.pretrain_fraction}); "
                             "it is the share of positions that become pauses, e.g. 0.1.")
        if self.pretrain_sampling not in SAMPLINGS:
            raise ValueError(f"plugins.pause.pretrain_sampling must be one of {', '.join(SAMPLINGS)} "
                             f"(got {self.pretrain_sampling!r}).")
        if self.num_pauses < 0:
            raise ValueError(f"plugins.pause.num_pauses (M) must be >= 0 (got {self.num_pauses}).")
        if self.inference_pauses is not None and self.inference_pauses < 0:
            raise ValueError(f"plugins.pause.inference_pauses (M_inf) must be >= 0 or null "
                             f"(got {self.inference_pauses}).")

    @property
    def generation_pauses(self) -> int:
        """M_inf: the pauses appended to every prompt at generation time."""
        return self.num_pauses if self.inference_pauses is None else self.inference_pauses
