"""What the cluster and operator commands of the ``omha`` CLI share: loading the configuration and plugins,
opening the store, printing a result or an error (``--json`` or text), and turning omha errors into exit
status 1.

Apart from :mod:`omha_core.cli_cluster` and :mod:`omha_core.cli_operator` so that neither imports the other
for these. Light at import time: the CLI imports it on every command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from omha_core.control import open_store as open_store

if TYPE_CHECKING:
    from omha_core.config import Config


def setup(args: argparse.Namespace, registrations_only: bool = False) -> tuple[Config, Any]:
    """The configuration ``args.config`` names, validated against the installed plugins, and their manager.

    ``registrations_only``: the command reads no hook but the registration hooks (config sections, backends,
    agents, devices), so the plugins are read by :func:`omha_core.plugins.get_registrations`, without pluggy when
    it can be done (``omha status``, issue 19)."""
    from omha_core.config import load_config
    from omha_core.plugins import get_plugin_manager, get_registrations

    pm = get_registrations() if registrations_only else get_plugin_manager()
    return load_config(args.config, pm), pm


def guard(func: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """Turn omha errors into a message on stderr and exit status 1."""

    def wrapper(args: argparse.Namespace) -> int:
        from omha_core.errors import OmhaError

        try:
            return int(func(args))
        except OmhaError as exc:
            print_error(args, str(exc))
            return 1

    return wrapper


def emit(args: argparse.Namespace, doc: dict[str, Any], text: str) -> None:
    """Print ``doc`` as JSON with ``--json``, else ``text``."""
    if getattr(args, "json", False):
        import json  # only with --json (CLI start-up, issue 19)

        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(text)


def print_error(args: argparse.Namespace, message: str) -> None:
    """An error: as ``omha.error/1`` JSON on stdout with ``--json`` (and always as text on stderr)."""
    if getattr(args, "json", False):
        import json

        print(json.dumps({"schema": "omha.error/1", "command": args.command, "error": message}, indent=2))
    print(f"omha {args.command}: {message}", file=sys.stderr)
