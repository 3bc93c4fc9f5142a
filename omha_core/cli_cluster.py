"""The cluster commands of the ``omha`` CLI (daemon, status, tell, load, show, shutdown, fence, demo).

Filled in by the daemon and fencing work; kept apart from ``cli.py`` so that the parser stays readable.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_cluster_commands(sub: Any) -> None:
    """Register the cluster subcommands on ``sub`` (an argparse subparsers action)."""
    _ = (sub, argparse)
