"""WiSE-FT for litplug: keep early finetuning checkpoints, interpolate θ = (1−α)·θ_early + α·θ_late
tensor by tensor from safetensors, and sweep α by pass@k / majority vote (arXiv 2504.10478)."""

from litplug_wise_ft.interpolate import interpolate_dirs, interpolate_tensor

__all__ = ["interpolate_dirs", "interpolate_tensor"]
