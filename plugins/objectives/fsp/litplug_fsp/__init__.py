"""litplug-fsp: future summary prediction (FSP-BCE, FSP-RevLM) and the multi-token prediction baseline."""

from litplug_fsp.config import FSPConfig
from litplug_fsp.plugin import FSPPlugin

__all__ = ["FSPConfig", "FSPPlugin"]
