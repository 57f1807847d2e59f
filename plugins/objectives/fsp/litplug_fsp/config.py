"""The options under ``plugins.fsp``; the README's config table explains each one.

Checks that need only these options live in ``__post_init__`` (a ValueError there becomes a
ConfigError, exit code 2). Checks against the rest of the run (sequence length, vocabulary) are in
:mod:`litplug_fsp.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OBJECTIVES = ("bce", "revlm", "mtp", "reverse_lm")
EDGES = ("truncate", "mask")
NORMALIZATIONS = ("mean", "sum")
TOKEN_WEIGHTS = ("uniform", "idf")
HEADS = ("auto", "block", "linear")
DOCUMENT_BOUNDARIES = ("mask", "truncate", "cross")


@dataclass
class FSPConfig:
    objective: str = "bce"  # bce | revlm | mtp | reverse_lm (train the right-to-left teacher for revlm)
    weight: float = 1.0  # coefficient of the auxiliary loss (the paper's implicit 1)
    tau: int = 12  # bce: the window x[t+2 .. t+tau] (tau - 1 tokens)
    edge: str = "truncate"  # bce: windows running past the last target: truncate the bag | mask the position
    # bce: a window holding tokens past an EOS (the next packed document): mask the position | truncate the
    # bag at the EOS | cross (ignore documents; litplug <= 0.1's stop_at_eos=false)
    document_boundary: str = "mask"
    # sum: the paper's plain sum over the vocabulary (or the teacher width) | mean: divide it by that size.
    # sum is the default: with mean the aux gradient is V times weaker and FSP no longer beats NTP on
    # path-star (reproduce/sweep.yaml; the method card's table).
    normalize: str = "sum"
    token_weights: str = "uniform"  # bce: per-token weights w_v: uniform | idf (from the training rows)
    # auto: linear for FSP (bce, revlm), block for MTP | block: one causal transformer layer (Gloeckle et
    # al.'s MTP head) | linear: Linear + LayerNorm. A block head can plan on its own without shaping the
    # trunk, which is what FSP is for; the card's sweep measures both.
    head: str = "auto"
    positions_per_sequence: int = 0  # >0: the aux loss uses this many sampled positions per row (0 = all)
    chunk_elements: int = 8_388_608  # most logits (positions x vocab) alive at once in the vocab reduction
    n_heads: int = 1  # mtp: heads predicting x[t+2] .. x[t+n_heads+1]
    revlm_path: str | None = None  # revlm: the exported reverse LM (a run's export/ with objective=reverse_lm)
    revlm_layer: int = -1  # revlm: which teacher hidden state is the target (-1 = last, after the final norm)
    revlm_normalize_target: bool = False  # revlm: layer-norm the target (no affine) before the L2 loss

    def __post_init__(self) -> None:
        self._check_choice("objective", OBJECTIVES)
        self._check_choice("edge", EDGES)
        self._check_choice("normalize", NORMALIZATIONS)
        self._check_choice("token_weights", TOKEN_WEIGHTS)
        self._check_choice("head", HEADS)
        if self.head == "auto":
            self.head = "block" if self.objective == "mtp" else "linear"
        self._check_choice("document_boundary", DOCUMENT_BOUNDARIES)
        if self.tau < 2:
            raise ValueError(f"plugins.fsp.tau must be at least 2 (the window is x[t+2 .. t+tau]); got {self.tau}.")
        if self.n_heads < 1:
            raise ValueError(f"plugins.fsp.n_heads must be at least 1 (MTP heads); got {self.n_heads}.")
        if self.weight < 0:
            raise ValueError(f"plugins.fsp.weight must be >= 0; got {self.weight}.")
        if self.positions_per_sequence < 0:
            raise ValueError("plugins.fsp.positions_per_sequence must be >= 0 (0 = every position); "
                             f"got {self.positions_per_sequence}.")
        if self.chunk_elements < 1:
            raise ValueError(f"plugins.fsp.chunk_elements must be at least 1; got {self.chunk_elements}.")
        if self.objective == "revlm":
            self._check_revlm_path()

    def _check_choice(self, key: str, choices: tuple[str, ...]) -> None:
        if getattr(self, key) not in choices:
            raise ValueError(f"plugins.fsp.{key} must be one of {', '.join(choices)}; got {getattr(self, key)!r}.")

    def _check_revlm_path(self) -> None:
        hint = ("Train a reverse LM first (litplug train CONFIG plugins.fsp.objective=reverse_lm run.name=revlm) "
                "and set plugins.fsp.revlm_path to its export/ directory.")
        if not self.revlm_path:
            raise ValueError(f"plugins.fsp.objective is 'revlm' but plugins.fsp.revlm_path is not set. {hint}")
        path = Path(self.revlm_path)
        if not (path / "config.json").is_file():
            raise ValueError(f"plugins.fsp.revlm_path '{path}' is not an exported HF model directory "
                             f"(no config.json there). {hint}")
