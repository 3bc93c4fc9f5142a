"""Where the init holds each child's processes, so that stopping an entry reaches everything it started.

A process group is not enough: a descendant that calls ``setsid()`` (``setsid prog &``, a daemon that
double-forks into a new session) leaves its process group and would escape both the stop of its entry and the
guard. So every child the init starts gets a *cell* that holds it and every process descending from it:

- cgroups (preferred; :mod:`omha_core.init.cgroups`): a cgroup v2 directory per child,
  ``<own cgroup>/omha-<pid>-<start>-<hex>/<n>.<group>.<tag>``, created below the daemon's own cgroup on a writable
  ``cgroup2`` mount (``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on a hybrid system). No process can
  leave a cgroup by itself, whatever it does with sessions and parents. The child enters its cgroup before it
  runs anything: the ``/bin/sh`` the init starts writes its own pid to ``cgroup.procs`` as its first act
  (``echo $$ >…/cgroup.procs || exit 126;`` in front of the command, which ``ps`` shows; ``echo`` is a builtin,
  so no fork), so nothing can fork before the move. ``posix_spawn`` cannot place a child in a cgroup itself;
  this is race-free without ``clone3(CLONE_INTO_CGROUP)``. If the move fails the child exits 126 without
  running the command. Signals go to the process group and to every other process of the cgroup; the final
  kill is ``cgroup.kill``, which no fork can outrun; the kernel's ``populated`` flag says when everything is
  gone. The guard kills the whole ``omha-…`` tree if the daemon dies, and removes it; an init that starts kills
  and removes the trees of dead inits (both daemon and guard killed; :mod:`omha_core.init.owners`).
- environment markers (fallback, no writable cgroup2 or ``[init] cgroup = "off"``;
  :mod:`omha_core.init.markers`): every child gets an
  environment variable ``OMHA_CELL=<token>.<n>``, which every descendant inherits through fork, exec and
  ``setsid()``. A cell's processes are those carrying its marker, its process group, and all their
  descendants by parent links in /proc. The daemon is deliberately not made a child subreaper: it would then
  inherit every orphan of every subprocess of the daemon (plugins' commands included) and leave each one a
  zombie, since it never calls ``waitpid(-1)`` (that would steal other parts' exit statuses). Limits: a
  descendant that both leaves the process tree of a live member (re-parented) and clears its environment
  (``env -i``) is not found, and only processes whose environment the daemon may read (its own user's; all
  for root) are. Telling that a cell is empty takes /proc scans (shared by all cells, see the module), so
  stopping is slower than with cgroups. An init that starts kills the processes carrying the marker of a dead
  init, as with cgroups.

Names (cgroup directories, markers) carry the init's scope, and a sweep only kills what dead inits of its own
scope left: several nodes of a local cluster share this machine's process table (:mod:`omha_core.init.owners`).

A child is in its process group and its cell: the group is signalled as a whole (``killpg``, as before cells
existed), the rest of the cell process by process, so that no process gets a signal twice.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence


class Cell(ABC):
    """One child's processes: started inside it, signalled and found gone together."""

    #: the child's pid (and process group), once started
    pid: int = 0
    #: the cell's ``cgroup.procs`` file, where a process moves itself into it (None: not a cgroup)
    procs: str | None = None

    @abstractmethod
    def prepare(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """The program and environment to start so that the child begins inside the cell."""

    def attach(self, pid: int) -> None:
        """The child was started with ``pid`` (its process group too)."""
        self.pid = pid

    @abstractmethod
    def signal(self, sig: int) -> None:
        """Send ``sig`` to every live process of the cell outside the child's own process group (the caller
        signals that group as a whole); SIGKILL kills them all, forks in flight included."""

    @abstractmethod
    def populated(self) -> bool:
        """True while a live (not zombie) process is in the cell."""

    def remove(self) -> None:  # noqa: B027 (a marker cell holds nothing to release)
        """Release what the cell holds on the system (its cgroup directory), once it is empty."""


class Cells(ABC):
    """How one init holds its children: makes a cell per child, tells the guard, cleans up."""

    #: what the log and ``omha status`` call the mechanism
    kind: str

    @abstractmethod
    def new(self, label: str) -> Cell:
        """A cell for a child tagged ``label`` (``group/tag``).

        :raises OSError: the cell could not be made (the child must then not be started).
        """

    @abstractmethod
    def guard_args(self) -> list[str]:
        """Arguments that tell the guard where to find every process of this init."""

    @abstractmethod
    def leftovers(self) -> set[int]:
        """Live processes still in any cell of this init."""

    @abstractmethod
    def close(self) -> None:
        """Kill whatever is left in the cells (the init stops: nothing may run on unsupervised) and clean up."""

    @abstractmethod
    def sweep(self, logger: logging.Logger) -> None:
        """Kill what inits that are gone (daemon and guard both killed) left running in their cells, and clean up
        after them; leave live inits' cells alone (see :mod:`omha_core.init.owners`)."""
