"""The guard: a tiny watchdog process that kills everything the init started when the daemon dies.

Another node takes a group over once this node is lost, so nothing the init started may run on
unsupervised after the daemon is killed (SIGKILL, OOM killer, a crash). A parent-death signal is not
enough: it reaches the ``sh -c`` the init started but not that shell's own children. So the init starts this
program once (:class:`omha_core.init.guardlink.GuardLink`), in its own session, with a pipe on its standard
input, and tells it every process group it creates (``+PGID``) and every one that is gone (``-PGID``). When
the pipe reaches end-of-file without a ``bye`` line, the daemon is gone: the guard sends SIGTERM to every
process group it knows (resource agents release their resource on SIGTERM), waits up to ``GRACE`` seconds,
sends SIGKILL to whatever is left, and exits.

This file runs as a script (``python -I -S guard.py GRACE``), so it imports nothing but the standard library;
the daemon imports it too, for :func:`group_alive` and :func:`signal_group`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable

#: seconds between SIGTERM and SIGKILL when the daemon died (agents release resources in that time)
DEFAULT_GRACE = 0.5


def _groups_with_live_members() -> set[int] | None:
    """Process groups holding a process that is not a zombie, from one /proc scan (None if /proc is unreadable)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    live: set[int] = set()
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses, so split after the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split(b" ", 3)
        if len(fields) >= 3 and fields[0] not in (b"Z", b"X"):
            live.add(int(fields[2]))
    return live


def live_groups(pgids: Iterable[int]) -> set[int]:
    """The process groups among ``pgids`` that still hold a live (not zombie) process.

    ``kill(-pgid, 0)`` answers the common case with one system call per group. When it finds members, they may
    all be zombies: orphans re-parented to a PID 1 that does not reap (some containers), which can never be
    killed and would make a stop wait forever; one /proc scan then tells live members from zombies for all the
    remaining groups at once.
    """
    candidates: set[int] = set()
    for pgid in pgids:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        candidates.add(pgid)
    if not candidates:
        return candidates
    live = _groups_with_live_members()
    return candidates if live is None else candidates & live


def group_alive(pgid: int) -> bool:
    """True while process group ``pgid`` holds a live (not zombie) process; see :func:`live_groups`."""
    return bool(live_groups((pgid,)))


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is already gone is not an error."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def kill_groups(pgids: set[int], grace: float) -> set[int]:
    """SIGTERM every group, SIGKILL the ones still alive after ``grace`` seconds; return the survivors."""
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    remaining = set(pgids)
    deadline = time.monotonic() + grace
    while remaining and time.monotonic() < deadline:
        time.sleep(0.01)
        remaining = live_groups(remaining)
    for pgid in remaining:
        signal_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while remaining and time.monotonic() < deadline:
        time.sleep(0.01)
        remaining = live_groups(remaining)
    return remaining


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
    except OSError:
        pass  # the daemon that read our stderr is gone


def main(argv: list[str]) -> int:
    """Read ``+PGID`` / ``-PGID`` / ``bye`` lines from stdin until EOF; on EOF without ``bye`` kill them all."""
    grace = float(argv[1]) if len(argv) > 1 else DEFAULT_GRACE
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    pgids: set[int] = set()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line == b"bye":
            return 0
        if len(line) < 2 or line[:1] not in (b"+", b"-") or not line[1:].isdigit():
            _say(f"ignoring malformed line {line!r}")
            continue
        pgid = int(line[1:])
        if line[:1] == b"+":
            pgids.add(pgid)
        else:
            pgids.discard(pgid)
    alive = live_groups(pgids)
    if alive:
        _say(f"the daemon is gone: stopping {len(alive)} process group(s)")
        left = kill_groups(alive, grace)
        if left:
            _say(f"process groups still alive after SIGKILL: {sorted(left)}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
