"""``litplug spt ...`` verbs."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("spt", help="specialized pretraining tools (litplug-spt)")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
