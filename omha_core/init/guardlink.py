"""The daemon's side of the guard (see :mod:`omha_core.init.guard`): start it, keep it told, restart it.

The write end of the guard's stdin pipe exists only in the daemon (close-on-exec, so no child inherits it):
when the daemon dies for any reason the kernel closes it, and the guard sees end-of-file.

Besides process groups, the guard is told every resource-agent entry that holds its resource (``hold``, with
the ``release`` command line, environment and time-out) and every one released (``drop``), so that it can run
``release`` itself, in reverse order, when the daemon dies.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

from omha_core.init import guard
from omha_core.init.child import Child

#: a guard that dies sooner than this after its start is restarted after this delay (no restart storm)
RESTART_DELAY = 1.0


class GuardLink:
    """Starts the guard process and tells it about every process group the init creates and loses (the init's
    cgroup tree or environment marker, which hold every process however it left its group, it gets at start)."""

    def __init__(
        self, logger: logging.Logger, grace: float = guard.DEFAULT_GRACE, where: list[str] | None = None
    ) -> None:
        """:param where: the init's cells as the guard's arguments (``--cgroup DIR`` or ``--marker PREFIX``)."""
        self.logger = logger
        self.grace = grace
        self.where = list(where or [])
        self.pgids: set[int] = set()
        #: held agent entries: key -> the ``hold`` line, in the order they became held
        self.holds: dict[str, str] = {}
        self._fd = -1
        self._child: Child | None = None
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None

    @property
    def pid(self) -> int | None:
        """The guard's pid while it runs."""
        return self._child.pid if self._child is not None and self._child.alive else None

    def start(self) -> None:
        """Start the guard process (in the running event loop) and tell it every group known so far."""
        self._timer = None
        r, w = os.pipe2(os.O_CLOEXEC)
        argv = [sys.executable, "-I", "-S", os.path.abspath(guard.__file__), str(self.grace), *self.where]
        try:
            self._child = Child(argv, "guard", self.logger, dict(os.environ), on_exit=self._exited, stdin_fd=r)
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._fd = w
        if self.pgids:
            self._send("".join(f"+{p}\n" for p in sorted(self.pgids)))
        if self.holds:
            self._send("".join(self.holds.values()))

    def add(self, pgid: int) -> None:
        """A new process group: kill it if the daemon dies."""
        self.pgids.add(pgid)
        self._send(f"+{pgid}\n")

    def remove(self, pgid: int) -> None:
        """A process group that is gone."""
        if pgid in self.pgids:
            self.pgids.discard(pgid)
            self._send(f"-{pgid}\n")

    def hold(self, key: str, label: str, argv: Sequence[str], env: Mapping[str, str], timeout: float) -> None:
        """An agent entry (``label``) may hold its resource: run ``argv`` with ``env`` (killed after ``timeout``
        seconds) to release it if the daemon dies."""
        spec = {"key": key, "label": label, "argv": list(argv), "env": dict(env), "timeout": timeout}
        line = f"hold {json.dumps(spec, separators=(',', ':'))}\n"
        self.holds[key] = line
        self._send(line)

    def drop(self, key: str) -> None:
        """The entry held under ``key`` was released: nothing for the guard to release."""
        if self.holds.pop(key, None) is not None:
            self._send(f"drop {key}\n")

    def _send(self, text: str) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, text.encode())
        except BrokenPipeError:
            pass  # the guard died: _exited restarts it and re-sends every group

    def _exited(self, child: Child) -> None:
        if self._closing:
            return
        self.logger.error(
            "the guard process (pid %d) exited with status %s; restarting it", child.pid, child.returncode
        )
        os.close(self._fd)
        self._fd = -1
        if time.monotonic() - child.started < RESTART_DELAY:
            self._timer = child.loop.call_later(RESTART_DELAY, self.start)
        else:
            self.start()

    async def close(self) -> None:
        """Tell the guard that the daemon stops on purpose (nothing to kill) and wait for it to exit."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._fd >= 0:
            self._send("bye\n")
            os.close(self._fd)
            self._fd = -1
        if self._child is not None and not await self._child.wait_gone(5.0):
            await self._child.terminate([(signal.SIGKILL, 0.0)])
