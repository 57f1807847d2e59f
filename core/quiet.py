"""Known-benign third-party noise, filtered so that litplug's own warnings and real problems stand out.

Each filter names one message exactly, from one library, with the reason it is benign here; nothing is
silenced by category or by module, so a new warning from the same library still shows.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, why it is benign for a litplug run)
BENIGN_WARNINGS: tuple[tuple[str, str], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning's own use of a torch pytree API (lightning/pytorch/utilities/_pytree.py); nothing a user can change"),
    (r"Your `IterableDataset` has `__len__` defined",
     "litplug's mixture stream defines __len__ for the progress total and shards its own work per DataLoader worker"),
)
BENIGN_LOG_LINES: tuple[tuple[str, str], ...] = (
    ("💡 Tip: For seamless cloud logging", "Lightning's advertisement for its litlogger package, on every Trainer"),
)


class _DropLines(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


_log_filter = _DropLines(tuple(prefix for prefix, _why in BENIGN_LOG_LINES))


def install() -> None:
    """Add the filters; calling it again is harmless (``warnings.filterwarnings`` replaces an equal filter,
    and a logger holds one filter object once)."""
    for message, _why in BENIGN_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    # Lightning's rank_zero_info logs through this logger (lightning.pytorch.utilities.rank_zero)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_log_filter)
