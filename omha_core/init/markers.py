"""Cells by environment marker, where cgroups are unavailable: ``OMHA_CELL=<token>.<n>`` in every child's
environment, inherited by all its descendants, found through /proc.

A cell's processes are those carrying its marker, the members of the child's process group, and all their
descendants by parent links. See :mod:`omha_core.init.cells` for what this cannot see.

Every cell of every init in the process reads one shared :class:`ProcTable`: a view of /proc reused for up to
:data:`TABLE_TTL` seconds by the frequent "is it empty yet?" questions (but never one older than the first
such question of a cell) and by SIGINT/SIGTERM, and taken afresh for each SIGKILL round. A process's marker is
read from its environment once per process (keyed by pid and start time), so a refresh costs one ``stat`` read
per process, not an ``environ`` read.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Mapping, Sequence
from functools import partial
from itertools import count

from omha_core.init import guard, owners
from omha_core.init.cells import Cell, Cells

#: the environment variable that marks a child and its descendants
MARKER_VAR = "OMHA_CELL"
#: seconds a view of /proc is reused for the question "is a cell empty?"
TABLE_TTL = 0.02
#: a marker's value: ``[<scope>-]<pid>-<start>-<hex>.<n>``, the token naming the init that made it and its scope
#: (see :mod:`.owners`)
TOKEN_RE = re.compile(rf"^((?:({owners.SCOPE_PATTERN})-)?(\d+)-(\d+)-[0-9a-f]+)\.\d+$")

_NEEDLE = b"\0" + MARKER_VAR.encode() + b"="


class ProcTable:
    """Every process: liveness, parent, process group and marker, from one /proc scan.

    A scan lists /proc again after reading it, and reads the processes that appeared meanwhile, until a listing
    shows nothing new: a process that forks and exits during the scan cannot hide its child, so every process
    alive at the end of the scan has been read.
    """

    def __init__(self) -> None:
        #: when the last scan started (time.monotonic())
        self.taken = float("-inf")
        #: pid -> (live, ppid, pgid, marker or None)
        self.procs: dict[int, tuple[bool, int, int, str | None]] = {}
        self.children: dict[int, list[int]] = {}
        self.by_marker: dict[str, list[int]] = {}
        self.by_pgid: dict[int, list[int]] = {}
        #: (pid, start time) -> marker ("" for none): a process's marker is read once
        self._markers: dict[tuple[int, bytes], str] = {}

    def refresh(self, fresh: bool = False) -> None:
        """Scan /proc again, unless the last scan is younger than :data:`TABLE_TTL` and ``fresh`` is False."""
        began = time.monotonic()
        if not fresh and began - self.taken < TABLE_TTL:
            return
        procs: dict[int, tuple[bool, int, int, str | None]] = {}
        markers: dict[tuple[int, bytes], str] = {}
        unread: list[tuple[int, bytes]] = []
        listed: set[str] = set()
        for _ in range(20):
            try:
                names = {name for name in os.listdir("/proc") if name.isdigit()} - listed
            except OSError:
                return
            if not names:
                break
            listed |= names
            for name in names:
                self._read(name, procs, markers, unread)
        for attempt in range(guard.EXEC_RETRIES):
            if not unread:
                break
            # an empty environment: the process is inside execve, its new image's environment not set up yet
            time.sleep(0.001 * (attempt + 1))
            again, unread = unread, []
            for pid, start in again:
                marker = _read_marker(str(pid))
                if marker is None:
                    unread.append((pid, start))
                else:
                    markers[(pid, start)] = marker
                    live, ppid, pgid, _ = procs[pid]
                    procs[pid] = (live, ppid, pgid, marker or None)
        for key in unread:
            markers[key] = ""  # empty for good: a process started with an empty environment
        self.taken = began
        self._markers = markers
        self.procs = procs
        self.children, self.by_marker, self.by_pgid = {}, {}, {}
        for pid, (_, ppid, pgid, marker) in procs.items():
            self.children.setdefault(ppid, []).append(pid)
            self.by_pgid.setdefault(pgid, []).append(pid)
            if marker:
                self.by_marker.setdefault(marker, []).append(pid)

    def _read(
        self,
        name: str,
        procs: dict[int, tuple[bool, int, int, str | None]],
        markers: dict[tuple[int, bytes], str],
        unread: list[tuple[int, bytes]],
    ) -> None:
        fields = guard.proc_stat(name, 20)  # state ppid pgrp session tty tpgid flags ... start time (index 19)
        if fields is None or len(fields) < 20:
            return
        pid, live = int(name), guard.live_state(fields[0])
        key = (pid, fields[19])
        marker = self._markers.get(key)
        if marker is None and live and not int(fields[6]) & guard.PF_KTHREAD:
            marker = _read_marker(name)
            if marker is None:
                unread.append(key)
        if marker is not None:
            markers[key] = marker
        procs[pid] = (live, int(fields[1]), int(fields[2]), marker or None)

    def members(self, marker: str, pid: int) -> set[int]:
        """Live processes carrying ``marker``, of process group ``pid``, ``pid`` itself, and their descendants."""
        todo = [*self.by_marker.get(marker, ()), *self.by_pgid.get(pid, ()), pid]
        found: set[int] = set()
        while todo:
            p = todo.pop()
            if p in found or p not in self.procs:
                continue
            found.add(p)
            todo.extend(self.children.get(p, ()))
        return {p for p in found if self.procs[p][0]}


def _read_marker(name: str) -> str | None:
    """The value of the marker variable in process ``name``'s environment ("" if it has none), or None when
    it cannot be told yet: the environment is empty for a moment while a process is inside ``execve``."""
    try:
        with open(f"/proc/{name}/environ", "rb") as fh:
            environ = b"\0" + fh.read()
    except OSError:
        return ""
    if environ == b"\0":
        return None
    start = environ.find(_NEEDLE)
    if start < 0:
        return ""
    start += len(_NEEDLE)
    end = environ.find(b"\0", start)
    return os.fsdecode(environ[start : end if end >= 0 else len(environ)])


#: the one table every marker cell of this process reads
TABLE = ProcTable()


class MarkedCell(Cell):
    """The processes carrying one child's environment marker, its process group, and their descendants."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        #: when the cell was first asked whether it is empty (after the child exited)
        self._asked: float | None = None

    def prepare(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        return list(argv), {**env, MARKER_VAR: self.marker}

    def members(self, fresh: bool = True) -> set[int]:
        """The cell's live processes, from a new view of /proc (or one up to :data:`TABLE_TTL` old)."""
        TABLE.refresh(fresh)
        return TABLE.members(self.marker, self.pid)

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            guard.kill_until_none_new(self.members)
        else:
            guard.signal_pids(self.members(fresh=False), sig, skip_pgids=(self.pid,))

    def populated(self) -> bool:
        """True while the cell has members. Empty is only concluded from a view of /proc taken after the first
        question: a cell found empty then stays empty (only its members could add to it), while an older view
        may predate processes the child started just before it exited."""
        if self._asked is None:
            self._asked = time.monotonic()
        TABLE.refresh(fresh=TABLE.taken < self._asked)
        return bool(TABLE.members(self.marker, self.pid))


class MarkedCells(Cells):
    """Cells told apart by an environment variable; see :mod:`omha_core.init.cells` for what they cannot see."""

    kind = "environment marker"

    def __init__(self, scope: str | None = None) -> None:
        #: the scope of this init (see :mod:`.owners`): its sweep only touches markers of the same scope
        self.scope = scope
        self.token = f"{scope + '-' if scope else ''}{owners.own_name()}-{os.urandom(3).hex()}"
        self._ids = count(1)

    @property
    def prefix(self) -> str:
        """What every marker of this init starts with (``OMHA_CELL=TOKEN.``)."""
        return f"{MARKER_VAR}={self.token}."

    def new(self, label: str) -> Cell:
        return MarkedCell(f"{self.token}.{next(self._ids)}")

    def guard_args(self) -> list[str]:
        return ["--marker", self.prefix]

    def leftovers(self) -> set[int]:
        return guard.marked_pids(os.fsencode(self.prefix))

    def close(self) -> None:
        prefix = os.fsencode(self.prefix)
        guard.kill_until_none_new(lambda: guard.marked_pids(prefix))

    def sweep(self, logger: logging.Logger) -> None:
        """Kill the processes that carry the marker of an init that is gone (its daemon and guard were both killed):
        they run supervised by nobody. One read of every process's environment, once per init start. Processes of
        another pid namespace, of a live init, of an init whose guard still runs, or of another scope (another
        node's or cluster's init on this machine) are left alone; markers made by an older omha (no start time in
        them) are not recognised."""
        stale: dict[str, list[int]] = {}
        TABLE.refresh(fresh=True)
        for marker, pids in TABLE.by_marker.items():
            match = TOKEN_RE.match(marker)
            if match is None or match[1] == self.token or match[2] != self.scope:
                continue
            if owners.owner_alive(int(match[3]), match[4]):
                continue
            live = [p for p in pids if TABLE.procs[p][0]]
            if live:
                stale.setdefault(match[1], []).extend(live)
        for token, pids in sorted(stale.items()):
            prefix = os.fsencode(f"{MARKER_VAR}={token}.")
            if not all(owners.in_own_pid_namespace(p) for p in pids):
                logger.warning(
                    "processes %s carry the marker of an init of another pid namespace (%s): left alone",
                    sorted(pids),
                    token,
                )
                continue
            if owners.cmdline_holds(None, [b"--marker", prefix]):
                continue  # the dead init's guard is stopping them right now
            logger.warning(
                "killing processes %s, left running unsupervised by an init that is gone (pid %s)",
                sorted(pids),
                token.removeprefix(f"{self.scope}-").split("-", 1)[0],
            )
            guard.kill_until_none_new(partial(guard.marked_pids, prefix))
