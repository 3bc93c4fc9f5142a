"""systemd integration (``Type=notify``): READY, STOPPING, WATCHDOG and STATUS through ``$NOTIFY_SOCKET``.

The daemon calls :meth:`Notifier.cycle_done` after each pass of its loop. ``WATCHDOG=1`` is sent only for a pass
that got through (the store answered or failed quickly): a loop stalled in a call that never returns, or frozen,
stops pinging, and systemd (``WatchdogSec=`` in ``contrib/omha.service``) kills and restarts the daemon; the
daemon's guard process stops its groups as soon as the daemon dies. ``STATUS=`` carries a one-line summary
shown by ``systemctl status omha``.

Without ``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("omha.daemon")


def sd_notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ``WATCHDOG=1``, ...) to ``$NOTIFY_SOCKET``; True when sent or not wanted."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return True
    if path.startswith("@"):
        path = "\0" + path[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), path)
    except OSError as exc:
        log.warning("cannot notify systemd through %s: %s", path, exc)
    return True


def watchdog_interval() -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is set for
    this process (``$WATCHDOG_PID``, when set, must be ours: the variables may have been inherited)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


def summary(view: Mapping[str, Any], local: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, str]) -> str:
    """One line for ``STATUS=``: quorum, nodes up, the groups running here, and how many are wanted.

    :param view: the daemon's ``last_view`` (nodes, quorum).
    :param local: the local init's status per group.
    :param wanted: hactl (group -> level).
    """
    nodes = view.get("nodes") or {}
    up = sum(1 for n in nodes.values() if isinstance(n, Mapping) and n.get("state") == "up")
    quorum = (view.get("quorum") or {}).get("have")
    here = [
        f"{g}@{s.get('level')}" for g, s in sorted(local.items()) if s.get("level") not in (None, "stop")
    ]
    wanted_n = sum(1 for level in wanted.values() if level != "stop")
    return (
        f"{'quorate' if quorum else 'NO QUORUM'}; {up}/{len(nodes)} nodes up; "
        f"here: {', '.join(here) or 'nothing'}; {wanted_n} group(s) wanted"
    )


class Notifier:
    """READY once, WATCHDOG at the pace systemd asks for, STATUS when the summary changes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.interval = watchdog_interval()
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self.ready = False
        self.last_ping = float("-inf")
        self.last_status: str | None = None

    def cycle_done(self, completed: bool, status: str) -> None:
        """After a pass of the loop: ``completed`` when the pass got through (ping the watchdog)."""
        if not self.enabled:
            return
        parts = []
        if status != self.last_status:
            parts.append(f"STATUS={status}")
            self.last_status = status
        if not self.ready:
            parts.append("READY=1")
            self.ready = True
        now = self.clock()
        # ping at least twice per WatchdogSec; more often costs a datagram per cycle for nothing
        if completed and self.interval is not None and now - self.last_ping >= self.interval / 2:
            parts.append("WATCHDOG=1")
            self.last_ping = now
        if parts:
            sd_notify("\n".join(parts))

    def stopping(self) -> None:
        """The daemon is stopping its groups (systemd then waits ``TimeoutStopSec``, not the watchdog)."""
        if self.enabled:
            sd_notify("STOPPING=1\nSTATUS=stopping every local group")
