"""litplug-liger: Liger-Kernel's fused linear cross-entropy and kernel patches, with a CPU fallback."""
