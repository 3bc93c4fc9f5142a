"""``omha local``: Cluster::Init on its own, on one machine, with no cluster and no store (the original's ``clinit``).

``omha local daemon`` runs the groups of one cltab with the same init as the cluster daemon
(:class:`~omha_core.init.LocalInit`) and answers on a control socket of its own; ``omha local tell [GROUP]
LEVEL`` moves a group (the group defaults to this host's name, as in ``clinit``), ``omha local status`` prints
every group's level and state, ``omha local reread`` re-reads the cltab, ``omha local shutdown`` stops every
group (running their ``stop`` entries) and the daemon. Nothing decides where a group runs: a group runs here at
the level it is told, whatever other machines do.

Paths: the cltab is ``--cltab`` (default ``/etc/cltab``, as in ``clinit``); the socket is ``--socket``, else the
cltab's ``:::socket:`` setting line, else :data:`DEFAULT_SOCKET`; with ``--clstat`` (or a ``:::clstat:`` line)
the daemon keeps a status file in the original's format (``Cluster::Init::Group NAME LEVEL STATE`` per line).
The ``[init]`` section of the ``-c`` omha.toml, when given, sets the stop signals and timeouts; nothing else of
it is read.

The protocol: one JSON object per connection, one JSON reply: ``{"cmd": "tell", "group": G, "level": L}``,
``{"cmd": "status"}``, ``{"cmd": "reread"}``, ``{"cmd": "shutdown"}`` (answered once every group is stopped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from omha_core.cltab import LEVEL_RE, NAME_RE, NAME_RULE, Cltab, parse_cltab
from omha_core.errors import ConfigError, ParseError
from omha_core.init import LocalInit
from omha_core.init.owners import scope_of
from omha_core.local_defaults import DEFAULT_SOCKET

#: the longest request or reply accepted on the socket
MAX_MESSAGE = 1 << 20

log = logging.getLogger("omha.local")


def read_cltab(path: str) -> Cltab:
    """Parse the cltab at ``path``.

    :raises ParseError: the file is invalid (every problem, with its line).
    :raises OSError: it cannot be read.
    """
    with open(path, "rb") as fh:
        return parse_cltab(fh.read(), path)


def socket_path(args: argparse.Namespace) -> str:
    """``--socket``, else the cltab's ``:::socket:`` setting (relative to the current directory, as in the
    original), else :data:`DEFAULT_SOCKET`."""
    if args.socket:
        return str(args.socket)
    try:
        return read_cltab(args.cltab).settings.get("socket") or DEFAULT_SOCKET
    except (OSError, ParseError):
        return DEFAULT_SOCKET


def init_options(config: str | None) -> dict[str, Any]:
    """The ``[init]`` table of the omha.toml at ``config`` (empty without one)."""
    if not config:
        return {}
    try:
        with open(config, "rb") as fh:
            table = tomllib.load(fh).get("init", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config}: {exc}") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{config}: [init] must be a table")
    return table


def clstat_text(status: dict[str, Any]) -> str:
    """The original's status file: ``Cluster::Init::Group NAME LEVEL STATE`` per group told."""
    return "".join(f"Cluster::Init::Group {g} {st['level']} {st['state']}\n" for g, st in status.items())


class Standalone:
    """The ``omha local daemon``: one :class:`LocalInit` and its control socket."""

    def __init__(self, cltab_path: str, sock: str, clstat: str | None, options: dict[str, Any]) -> None:
        self.cltab_path = cltab_path
        self.sock = sock
        self.clstat = clstat
        # its socket names this standalone init: another one (or a cluster's daemon) keeps its leftovers
        scope = scope_of("local", os.path.abspath(sock))
        self.init = LocalInit(
            read_cltab(cltab_path), options=options, logger=log, on_change=self._changed, scope=scope
        )
        self.done = asyncio.Event()
        self._stopping: asyncio.Task[None] | None = None

    def _changed(self) -> None:
        if self.clstat is None:
            return
        tmp = f"{self.clstat}.tmp"
        try:
            Path(tmp).write_text(clstat_text(self.init.status()))
            os.replace(tmp, self.clstat)
        except OSError as exc:
            log.error("cannot write %s: %s", self.clstat, exc)

    def reread(self) -> str | None:
        """Re-read the cltab; an invalid one is refused (the running one stays). Returns the error, if any."""
        try:
            cltab = read_cltab(self.cltab_path)
        except (OSError, ParseError) as exc:
            log.error("cltab not re-read, keeping the running one: %s", exc)
            return str(exc)
        for warning in cltab.warnings:
            log.info("%s", warning)
        self.init.reload(cltab)
        return None

    def shutdown(self) -> asyncio.Task[None]:
        """Stop every group (their ``stop`` entries run), then let :meth:`serve` return."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._shutdown())
        return self._stopping

    async def _shutdown(self) -> None:
        log.info("shutting down: stopping every group")
        await self.init.shutdown()
        self.done.set()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one control request."""
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "groups": self.init.status()}
        if cmd == "reread":
            error = self.reread()
            return {"ok": error is None, "error": error}
        if cmd == "shutdown":
            await asyncio.shield(self.shutdown())
            return {"ok": True}
        if cmd == "tell":
            group, level = request.get("group"), request.get("level")
            if not isinstance(group, str) or not NAME_RE.match(group):
                return {"ok": False, "error": f"group {group!r} must be {NAME_RULE}"}
            if not isinstance(level, str) or not LEVEL_RE.match(level):
                return {"ok": False, "error": f"level {level!r} must be {NAME_RULE} and ','"}
            if self._stopping is not None:
                return {"ok": False, "error": "shutting down"}
            if group not in self.init.cltab.groups:
                return {"ok": False, "error": f"group {group!r} is not in {self.cltab_path}"}
            self.init.tell(group, level)
            return {"ok": True}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            data = await reader.read(MAX_MESSAGE)
            try:
                request = json.loads(data)
                reply = (
                    await self.handle(request) if isinstance(request, dict) else {"ok": False, "error": "not an object"}
                )
            except ValueError:
                reply = {"ok": False, "error": "request is not JSON"}
            writer.write(json.dumps(reply).encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve(self) -> None:
        """Run until shut down (``shutdown`` request, SIGTERM or SIGINT); SIGHUP re-reads the cltab."""
        await self.init.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.shutdown)
        loop.add_signal_handler(signal.SIGINT, self.shutdown)
        loop.add_signal_handler(signal.SIGHUP, self.reread)
        os.makedirs(os.path.dirname(os.path.abspath(self.sock)), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if _answers(self.sock):
                raise ConfigError(f"{self.sock}: another omha local daemon answers on this socket")
            os.unlink(self.sock)
        server = await asyncio.start_unix_server(self._client, path=self.sock)
        os.chmod(self.sock, 0o600)
        log.info("omha local: %s, control socket %s", self.cltab_path, self.sock)
        self._changed()
        try:
            await self.done.wait()
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.sock)
            if self._stopping is None:
                await self.init.shutdown()


def _answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
    return True


def request(path: str, message: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any]:
    """Send ``message`` to the daemon at ``path``; return its reply.

    :raises OSError: no daemon answers there.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(message).encode())
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = json.loads(b"".join(chunks) or b"{}")
    return reply if isinstance(reply, dict) else {"ok": False, "error": "bad reply"}


# ------------------------------------------------------------------------------------------------- the CLI


def _cmd_daemon(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s omha-local %(levelname)s %(message)s")
    try:
        options = init_options(args.config)
        cltab = read_cltab(args.cltab)
        clstat = args.clstat or cltab.settings.get("clstat")
        daemon = Standalone(args.cltab, socket_path(args), clstat, options)
        asyncio.run(daemon.serve())
    except (OSError, ParseError, ConfigError) as exc:
        print(f"omha local: {exc}", file=sys.stderr)
        return 1
    return 0


def _send(args: argparse.Namespace, message: dict[str, Any], timeout: float | None = 30.0) -> dict[str, Any] | None:
    path = socket_path(args)
    try:
        reply = request(path, message, timeout)
    except OSError as exc:
        print(f"omha local: no daemon answers on {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    if not reply.get("ok"):
        print(f"omha local: {reply.get('error')}", file=sys.stderr)
        return None
    return reply


def _print_status(groups: dict[str, Any]) -> None:
    for name, g in groups.items():
        print(f"{name} {g['level']} {g['state']}")
        for tag, e in g["entries"].items():
            pid = f" pid {e['pid']}" if e["pid"] else ""
            print(f"  {tag} {e['mode']} {e['state']}{pid}")


def _cmd_tell(args: argparse.Namespace) -> int:
    group = args.group or socket.gethostname()
    if _send(args, {"cmd": "tell", "group": group, "level": args.level}) is None:
        return 1
    if not args.wait:
        print(f"{group}: told {args.level}")
        return 0
    while True:
        reply = _send(args, {"cmd": "status"})
        if reply is None:
            return 1
        g = reply["groups"].get(group, {})
        if g.get("level") == args.level and g.get("state") not in ("STARTING", "STOPPING"):
            print(f"{group} {g['level']} {g['state']}")
            return 1 if g["state"] == "FAILED" else 0
        time.sleep(0.05)


def _cmd_status(args: argparse.Namespace) -> int:
    reply = _send(args, {"cmd": "status"})
    if reply is None:
        return 1
    if args.json:
        print(json.dumps(reply["groups"], indent=2))
    else:
        _print_status(reply["groups"])
    return 0


def _cmd_reread(args: argparse.Namespace) -> int:
    return 0 if _send(args, {"cmd": "reread"}) is not None else 1


def _cmd_shutdown(args: argparse.Namespace) -> int:
    return 0 if _send(args, {"cmd": "shutdown"}, timeout=None) is not None else 1
