"""WiSE-FT for litplug: keep early finetuning checkpoints, interpolate θ = (1−α)·θ_early + α·θ_late
tensor by tensor from safetensors (:func:`litplug_wise_ft.interpolate.interpolate_dirs`), and sweep α
by pass@k / majority vote (:func:`litplug_wise_ft.sweep.run_sweep`). Nothing heavy is imported here:
``litplug plugins`` imports every plugin's package."""
