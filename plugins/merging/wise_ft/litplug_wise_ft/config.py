"""The training-time options of ``plugins.wise_ft``: which early checkpoints to keep.

The merge and the α sweep are command-line verbs (``litplug merge wise-ft``) with their own flags;
this section only configures the callback that keeps early checkpoints during finetuning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

METRIC_PATTERN = re.compile(r"^pass@(\d+)$")


@dataclass
class WiseFTConfig:
    # Export the model (a plain HF safetensors directory <run>/<output_subdir>/step_<N>) right after
    # these optimizer steps; 0 means the starting (e.g. pretrained) model, before the first step.
    keep_steps: list[int] = field(default_factory=list)
    # Every N optimizer steps (and at step 0), sample `score_n` answers per validation prompt and log
    # pass@k / majority vote; the best step by `select_metric` is kept as <run>/<output_subdir>/best.
    # 0 turns scoring and best-checkpoint keeping off.
    score_every_n_steps: int = 0
    score_n: int = 16  # samples per prompt
    score_k: list[int] = field(default_factory=lambda: [1, 4, 8])  # pass@k values scored and logged
    score_num_examples: int = 64  # prompts scored (the first N of the split)
    score_temperature: float = 1.0  # [U] sampling temperature while scoring
    score_split: str = "validation"  # never the test split you report on
    score_source: str | None = None  # which prompt/answer data source; default: the first one
    score_batch_size: int = 16  # prompts per generate() call (each expands to score_n sequences)
    score_max_new_tokens: int | None = None  # default: the longest reference answer + 1
    # [U] what "best" means: pass@K (K in score_k) or majority_vote. The paper keeps "an early
    # checkpoint"; the step where held-out pass@k (large k) peaks is our default rule.
    select_metric: str = "pass@8"
    # [U] earliest step that may be "best"; 0 admits the starting model (the original WiSE-FT,
    # which interpolates with the zero-shot model), 1 keeps the choice among finetuning checkpoints.
    select_min_step: int = 1
    # [U] latest step that may be "best" (None: any step). The paper interpolates with an *early*
    # checkpoint; on a noisy, flat pass@k curve an unbounded argmax can land late in training.
    select_max_step: int | None = None
    output_subdir: str = "wise_ft"  # under the run directory

    def __post_init__(self) -> None:
        if any(not isinstance(s, int) or s < 0 for s in self.keep_steps):
            raise ValueError(f"keep_steps must be non-negative integers (got {list(self.keep_steps)}).")
        if self.score_every_n_steps < 0:
            raise ValueError(f"score_every_n_steps must be >= 0 (got {self.score_every_n_steps}).")
        if self.score_n < 1:
            raise ValueError(f"score_n must be at least 1 (got {self.score_n}).")
        bad_k = [k for k in self.score_k if not 1 <= k <= self.score_n]
        if not self.score_k or bad_k:
            raise ValueError(f"score_k needs values in [1, score_n={self.score_n}] (got {list(self.score_k)}).")
        if self.score_num_examples < 1 or self.score_batch_size < 1:
            raise ValueError("score_num_examples and score_batch_size must be at least 1.")
        if self.score_temperature <= 0:
            raise ValueError(f"score_temperature must be positive (got {self.score_temperature}).")
        if self.score_split not in ("train", "validation", "test"):
            raise ValueError(f"score_split must be train, validation or test (got '{self.score_split}').")
        match = METRIC_PATTERN.match(self.select_metric)
        if self.select_metric != "majority_vote" and (match is None or int(match.group(1)) not in self.score_k):
            raise ValueError(f"select_metric must be 'majority_vote' or 'pass@K' with K in "
                             f"score_k={list(self.score_k)} (got '{self.select_metric}').")
        if self.select_min_step < 0:
            raise ValueError(f"select_min_step must be >= 0 (got {self.select_min_step}).")
        if self.select_max_step is not None and self.select_max_step < self.select_min_step:
            raise ValueError(f"select_max_step ({self.select_max_step}) must be >= select_min_step "
                             f"({self.select_min_step}).")
        if not self.output_subdir or "/" in self.output_subdir or self.output_subdir in (".", ".."):
            raise ValueError(f"output_subdir must be a plain folder name (got '{self.output_subdir}').")
        self.keep_steps = sorted(set(self.keep_steps))
