"""The ``plugins.liger`` section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LigerConfig:
    fused_linear_cross_entropy: bool = True  # lm_loss from hidden states, never holding the [N, V] logits
    rms_norm: bool = True  # CUDA: patch the model's RMSNorm modules with Liger's
    rope: bool = True  # CUDA: patch rotary position embeddings with Liger's
    swiglu: bool = True  # CUDA: patch the SwiGLU MLPs with Liger's
    chunk_rows: int | None = None  # fallback: token rows per chunk; None = the hidden size
    strict: bool = False  # true: refuse to start unless Liger's CUDA kernels will run (exit code 2)

    def __post_init__(self) -> None:
        if self.chunk_rows is not None and self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, or null for the automatic size (got {self.chunk_rows}).")
