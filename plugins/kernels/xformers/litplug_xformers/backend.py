"""Can xformers' memory-efficient attention run in this run? xformers imports (with warnings) even on
builds whose kernels do not match the installed torch, so the check also runs one tiny attention call."""

from __future__ import annotations

import functools
from types import ModuleType

import torch

INSTALL_HINT = "pip install 'litplug-xformers[gpu]'"


@functools.cache
def xformers_ops() -> ModuleType | None:
    """``xformers.ops``, or None when it cannot be imported."""
    try:
        import xformers.ops
    except Exception:  # a missing package, or a build that fails against this torch/CUDA
        return None
    return xformers.ops


def cuda_problem(accelerator: str = "auto") -> str | None:
    """Why xformers' kernel cannot be used for a run on ``trainer.accelerator``, or None if it can."""
    if accelerator not in ("auto", "cuda", "gpu"):
        return f"trainer.accelerator is '{accelerator}', not a CUDA device"
    if not torch.cuda.is_available():
        return f"CUDA is not available (torch {torch.__version__})"
    ops = xformers_ops()
    if ops is None:
        return f"xformers cannot be imported; install it with `{INSTALL_HINT}`"
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    probe = torch.zeros(1, 8, 1, 64, device="cuda", dtype=dtype)
    try:
        ops.memory_efficient_attention(probe, probe, probe, attn_bias=ops.LowerTriangularMask())
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"xformers {getattr(ops, '__version__', '')} has no working kernel here ({first_line})"
    return None
