"""The ``omha local ...`` argument parser, kept apart from :mod:`omha_core.standalone` so that building the
``omha`` parser (on every command) does not import asyncio and the init: the handlers import it when they run."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from omha_core.local_defaults import DEFAULT_CLTAB, DEFAULT_SOCKET


def _lazy(name: str) -> Callable[[argparse.Namespace], int]:
    """A handler that imports :mod:`omha_core.standalone` and calls its ``name`` when the command runs."""

    def handler(args: argparse.Namespace) -> int:
        from omha_core import standalone

        return int(getattr(standalone, name)(args))

    handler.__name__ = name
    return handler


def add_local_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``omha local ...`` on ``sub`` (an argparse subparsers action)."""
    local = sub.add_parser(
        "local", parents=[common], help="Cluster::Init alone: run a cltab on this machine, no cluster (like clinit)"
    )
    paths = type(common)(add_help=False)  # the CLI's parser class (its formatter imports no shutil)
    paths.add_argument("--cltab", default=DEFAULT_CLTAB, help=f"the cltab (default {DEFAULT_CLTAB})")
    paths.add_argument("--socket", help=f"control socket (default: the cltab's :::socket: line, else {DEFAULT_SOCKET})")
    cmds = local.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("daemon", parents=[common, paths], help="run the groups of the cltab in the foreground")
    p.add_argument("--clstat", help="keep a status file in the original's format here")
    p.set_defaults(func=_lazy("_cmd_daemon"))
    p = cmds.add_parser("tell", parents=[common, paths], help="move GROUP (default: the host name) to LEVEL")
    p.add_argument("group", nargs="?")
    p.add_argument("level")
    p.add_argument("--wait", action="store_true", help="wait until the group settles; exit 1 when it FAILED")
    p.set_defaults(func=_lazy("_cmd_tell"))
    p = cmds.add_parser("status", parents=[common, paths], help="every group's level and state, and its entries")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_lazy("_cmd_status"))
    p = cmds.add_parser("reread", parents=[common, paths], help="re-read the cltab (an invalid one is refused)")
    p.set_defaults(func=_lazy("_cmd_reread"))
    p = cmds.add_parser("shutdown", parents=[common, paths], help="stop every group, then the daemon")
    p.set_defaults(func=_lazy("_cmd_shutdown"))
