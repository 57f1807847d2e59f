"""litplug-s2d: Selective Spectral Decay (arXiv 2602.14432) and a W4A4/W8A8 quantization report."""
