"""Can Liger's CUDA kernels run in this run? Liger imports Triton at import time, so every import of
``liger_kernel.transformers`` lives here, behind a check, and the rest of the plugin never needs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

INSTALL_HINT = "pip install 'litplug-liger[gpu]'"


def cuda_problem(accelerator: str = "auto") -> str | None:
    """Why Liger's kernels cannot be used for a run on ``trainer.accelerator``, or None if they can."""
    if accelerator not in ("auto", "cuda", "gpu"):
        return f"trainer.accelerator is '{accelerator}', not a CUDA device"
    if not torch.cuda.is_available():
        return f"CUDA is not available (torch {torch.__version__})"
    try:
        import liger_kernel.transformers  # noqa: F401
    except Exception as exc:  # Triton can fail with ImportError or RuntimeError (driver/toolchain)
        return f"liger-kernel cannot be imported ({type(exc).__name__}: {exc}); install it with `{INSTALL_HINT}`"
    return None


def fused_linear_cross_entropy() -> Callable[..., torch.Tensor]:
    """Liger's fused linear cross-entropy (Triton; CUDA only). Call only after :func:`cuda_problem`."""
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return liger_fused_linear_cross_entropy


def patch_functions() -> dict[str, Callable[..., Any]]:
    """Liger's ``apply_liger_kernel_to_<arch>`` functions by HF ``model_type``."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return dict(MODEL_TYPE_TO_APPLY_LIGER_FN)
