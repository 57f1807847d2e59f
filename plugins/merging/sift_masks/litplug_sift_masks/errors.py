"""The one error this plugin adds: a problem with a merge store or its inputs (exit code 2)."""

from __future__ import annotations

from litplug.api import LitplugError


class StoreError(LitplugError):
    """A store is missing, corrupted, or asked to take a task that does not fit it. The store is
    left as it was: every update commits by one ``os.replace`` of the manifest."""
