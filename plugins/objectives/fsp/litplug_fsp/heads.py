"""Auxiliary heads: trunk hidden states [B, T, H] in, head states [B, T, out] out, causally.

Both kinds sit in parallel with the LM head on the trunk's final hidden states (the paper's
f'_ha o f_s). ``block`` is one pre-norm causal transformer layer (PyTorch's own
``TransformerEncoderLayer``, so it works for any HF architecture), as the MTP paper uses per head;
``linear`` is a position-wise Linear, cheaper and trivially causal. A final LayerNorm puts the
output on the scale the shared unembedding expects; ``out_size`` adds a projection (FSP-RevLM
regresses onto a teacher whose width may differ).
"""

from __future__ import annotations

import torch
from torch import nn


class AuxHead(nn.Module):
    def __init__(self, kind: str, hidden_size: int, num_heads: int, ffn_size: int, out_size: int | None = None,
                 token_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        # FSP-BCE's per-token weights travel with the head (device moves, checkpoints); None = uniform.
        self.register_buffer("token_weights", token_weights)
        self.kind = kind
        if kind == "block":
            self.body: nn.Module = nn.TransformerEncoderLayer(
                hidden_size, num_heads, ffn_size, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
        else:
            self.body = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size)
        self.proj = nn.Linear(hidden_size, out_size) if out_size else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.kind == "block":
            mask = nn.Transformer.generate_square_subsequent_mask(hidden.shape[1], device=hidden.device,
                                                                  dtype=hidden.dtype)
            out = self.body(hidden, src_mask=mask, is_causal=True)
        else:
            out = self.body(hidden)
        return self.proj(self.norm(out))


def head_for(model: nn.Module, kind: str, out_size: int | None = None,
             token_weights: torch.Tensor | None = None) -> AuxHead:
    """A head sized from the HF model's config (hidden size, attention heads, MLP width)."""
    cfg = model.config
    hidden = cfg.hidden_size
    heads = getattr(cfg, "num_attention_heads", None) or 1
    if hidden % heads:
        heads = 1
    ffn = getattr(cfg, "intermediate_size", None) or 4 * hidden
    return AuxHead(kind, hidden, heads, ffn, out_size, token_weights)
