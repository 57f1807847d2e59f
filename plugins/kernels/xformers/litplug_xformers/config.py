"""The ``plugins.xformers`` section."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class XformersConfig:
    strict: bool = False  # true: refuse to start unless xformers' CUDA kernel will run (exit code 2)
