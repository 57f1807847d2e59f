"""xformers' memory-efficient attention as a transformers attention function.

transformers hands attention functions [B, H, M, K] tensors and expects [B, M, H, K] back;
xformers works in [B, M, H, K] directly. The kernel covers the training path (no mask tensor: causal
self-attention, or one decoding query); anything with an explicit mask (padded prompts) or a cache
offset goes through transformers' own SDPA function, which is also the whole path off CUDA.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

ATTN_IMPLEMENTATION = "xformers"
_SDPA_ONLY_KWARGS = ("position_bias", "cache", "softcap")  # features the xformers path does not implement


def memory_efficient_forward(ops: ModuleType, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                             causal: bool, dropout: float, scaling: float | None) -> torch.Tensor:
    """[B, H, M, K] query/key/value (K/V may have fewer heads) -> [B, M, H, K] attention output."""
    heads, kv_heads = query.shape[1], key.shape[1]
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
    device = query.device.type
    if torch.is_autocast_enabled(device):  # as autocast does for SDPA; RoPE leaves q/k fp32 but v bf16
        dtype = torch.get_autocast_dtype(device)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if kv_heads != heads:  # xformers' grouped 5-D layout is forward-only: repeat K/V heads like repeat_kv
        k = k.repeat_interleave(heads // kv_heads, dim=2)
        v = v.repeat_interleave(heads // kv_heads, dim=2)
    bias = ops.LowerTriangularMask() if causal else None
    return ops.memory_efficient_attention(q, k, v, attn_bias=bias, p=dropout, scale=scaling)


def xformers_attention_forward(ops: ModuleType | None, module: torch.nn.Module, query: torch.Tensor,
                               key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None,
                               dropout: float = 0.0, scaling: float | None = None, is_causal: bool | None = None,
                               **kwargs: Any) -> tuple[torch.Tensor, None]:
    """The registered function (``ops`` bound by :func:`register`); same contract as transformers' SDPA."""
    q_len, kv_len = query.shape[2], key.shape[2]
    kernel_fits = (
        ops is not None and query.is_cuda and attention_mask is None and (q_len == 1 or q_len == kv_len)
        and not any(kwargs.get(name) is not None for name in _SDPA_ONLY_KWARGS)
    )
    if not kernel_fits:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = (is_causal if is_causal is not None else getattr(module, "is_causal", True)) and q_len > 1
    return memory_efficient_forward(ops, query, key, value, causal, dropout, scaling), None


def register(ops: ModuleType | None) -> None:
    """Register ``xformers`` with transformers (process-wide; the latest call wins). Masks are built
    as for SDPA, which leaves them out (None) whenever plain causal attention is what is wanted."""
    AttentionInterface.register(ATTN_IMPLEMENTATION, functools.partial(xformers_attention_forward, ops))
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)
