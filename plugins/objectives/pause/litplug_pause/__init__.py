"""litplug-pause: learnable pause tokens in pretraining, finetuning and generation (arXiv 2310.02226)."""

from litplug_pause.config import PauseConfig
from litplug_pause.plugin import PausePlugin

__all__ = ["PauseConfig", "PausePlugin"]
