"""The daemon's unix control socket: ``omha status`` reads this node's status there, ``omha shutdown`` stops it.

One JSON request per connection (``{"cmd": "status"}`` or ``{"cmd": "shutdown"}``), one JSON reply. A socket that
another live daemon answers on means this node already runs: the start is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import Any

from omha_core.uniqueness import DuplicateNode

log = logging.getLogger("omha.daemon")


class ControlSocket:
    """The control socket at ``path``; ``status`` gives this node's status document, and ``shutdown`` sets
    ``stopping``."""

    def __init__(self, path: str, status: Callable[[], dict[str, Any]], stopping: asyncio.Event) -> None:
        self.path, self.status, self.stopping = path, status, stopping
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; raise :class:`DuplicateNode` when another daemon answers on the socket already. A socket that
        cannot be made is logged, and the daemon runs without it."""
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        if await answers(self.path):
            raise DuplicateNode(f"control socket {self.path} is in use by another running omha daemon")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=self.path)
        except OSError as exc:
            log.error("control socket %s: %s (omha shutdown will not reach this daemon)", self.path, exc.strerror)

    def close(self) -> None:
        """Stop listening and remove the socket (when it was made)."""
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            request = json.loads(line or b"{}")
            cmd = request.get("cmd")
            if cmd == "status":
                reply: dict[str, Any] = {"ok": True, "status": self.status()}
            elif cmd == "shutdown":
                reply = {"ok": True}
                self.stopping.set()
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError, ValueError) as exc:
            log.debug("control connection: %s", exc)
        finally:
            writer.close()


async def answers(path: str) -> bool:
    """Does a server listen on the unix socket ``path``? (A stale socket file refuses the connection.)"""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
