"""litplug-xformers: xformers' memory-efficient attention on CUDA, PyTorch SDPA elsewhere."""
