"""litplug: a thin PyTorch Lightning core whose research methods are pip-installable plugins.

Plugin authors need only `hookimpl` (to mark hook implementations) and the contract in
`litplug.hookspecs`; everything else is the core's business.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("litplug")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

PROJECT = "litplug"
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = ["PROJECT", "__version__", "hookimpl"]
