"""Where the init holds each child's processes, so that stopping an entry reaches everything it started.

A process group is not enough: a descendant that calls ``setsid()`` (``setsid prog &``, a daemon that
double-forks into a new session) leaves its process group and would escape both the stop of its entry and the
guard. So every child the init starts gets a *cell* that holds it and every process descending from it:

- :class:`CgroupCells` (preferred): a cgroup v2 directory per child,
  ``<own cgroup>/omha-<pid>-<hex>/<n>.<group>.<tag>``, created below the daemon's own cgroup on a writable
  ``cgroup2`` mount (``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` on a hybrid system). No process can
  leave a cgroup by itself, whatever it does with sessions and parents. The child enters its cgroup before it
  runs anything: the ``/bin/sh`` the init starts writes its own pid to ``cgroup.procs`` as its first act
  (``echo $$ >…/cgroup.procs || exit 126;`` in front of the command, which ``ps`` shows; ``echo`` is a builtin,
  so no fork), so nothing can fork before the move. ``posix_spawn`` cannot place a child in a cgroup itself;
  this is race-free without ``clone3(CLONE_INTO_CGROUP)``. If the move fails the child exits 126 without
  running the command. Signals go to the process group and to every other process of the cgroup; the final
  kill is ``cgroup.kill``, which no fork can outrun; the kernel's ``populated`` flag says when everything is
  gone.
  The guard kills the whole ``omha-…`` tree if the daemon dies, and removes it.
- :class:`MarkedCells` (fallback, no writable cgroup2 or ``[init] cgroup = "off"``): every child gets an
  environment variable ``OMHA_CELL=<token>.<n>``, which every descendant inherits through fork, exec and
  ``setsid()``. A cell's processes are those carrying its marker, its process group, and all their
  descendants by parent links in /proc. The daemon is deliberately not made a child subreaper: it would then
  inherit every orphan of every subprocess of the daemon (plugins' commands included) and leave each one a
  zombie, since it never calls ``waitpid(-1)`` (that would steal other parts' exit statuses). Limits: a
  descendant that both leaves the process tree of a live member (re-parented) and clears its environment
  (``env -i``) is not found, and only processes whose environment the daemon may read (its own user's; all
  for root) are.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from itertools import count

from omha_core.init import guard

#: the environment variable that marks a child and its descendants in :class:`MarkedCells`
MARKER_VAR = "OMHA_CELL"
#: the exit status of a child that could not enter its cgroup (it ran nothing)
EXIT_NO_CGROUP = 126
#: the usual mount point of the cgroup v2 hierarchy (preferred when there are several)
CGROUP_MOUNT = "/sys/fs/cgroup"
#: seconds a marker cell must look empty, over several /proc scans, before it counts as empty
SETTLE = 0.05


class Cell(ABC):
    """One child's processes: started inside it, signalled and found gone together."""

    #: the child's pid (and process group), once started
    pid: int = 0

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


# ----------------------------------------------------------------------------------------------- cgroup v2


class CgroupCell(Cell):
    """A cgroup v2 directory holding one child and all its descendants."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.mkdir(path)

    def prepare(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        return enter_cgroup(argv, os.path.join(self.path, "cgroup.procs")), dict(env)

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            guard.cgroup_kill(self.path)
        else:
            guard.signal_pids(guard.cgroup_pids(self.path), sig, skip_pgids=(self.pid,))

    def populated(self) -> bool:
        return guard.cgroup_populated(self.path)

    def remove(self) -> None:
        try:
            os.rmdir(self.path)
        except OSError:
            pass  # gone already, or still busy (a process raced in): the init's close removes the whole tree


def enter_cgroup(argv: Sequence[str], procs: str) -> list[str]:
    """``argv`` run by a ``/bin/sh`` that first moves itself into the cgroup whose ``cgroup.procs`` is ``procs``.

    The init's own ``/bin/sh -c COMMAND`` gets the move prepended on the same line (one shell, no extra exec,
    line numbers in the shell's messages unchanged); any other program is exec'd by the shell after the move.
    When the move fails, the shell says why (``cannot create …/cgroup.procs: …``) and exits
    :data:`EXIT_NO_CGROUP` without running anything.
    """
    enter = f"echo $$ >{shlex.quote(procs)} || exit {EXIT_NO_CGROUP}; "
    if len(argv) == 3 and argv[0] == "/bin/sh" and argv[1] == "-c":
        return ["/bin/sh", "-c", enter + argv[2]]
    return ["/bin/sh", "-c", enter + 'exec "$@"', "sh", *argv]


class CgroupCells(Cells):
    """Every child in its own cgroup below ``<parent>/omha-<pid>-<hex>`` (created here)."""

    kind = "cgroup"

    def __init__(self, parent: str) -> None:
        self.parent = parent
        self.root = os.path.join(parent, f"omha-{os.getpid()}-{os.urandom(3).hex()}")
        os.mkdir(self.root)
        if not os.access(os.path.join(self.root, "cgroup.procs"), os.W_OK):
            os.rmdir(self.root)
            raise PermissionError(f"cannot move processes into {self.root}")
        self._ids = count(1)

    def new(self, label: str) -> Cell:
        name = f"{next(self._ids)}.{label.replace('/', '.')}"[:200]
        return CgroupCell(os.path.join(self.root, name))

    def guard_args(self) -> list[str]:
        return ["--cgroup", self.root]

    def leftovers(self) -> set[int]:
        return guard.cgroup_pids(self.root)

    def close(self) -> None:
        if guard.cgroup_populated(self.root):
            guard.cgroup_kill(self.root)
            guard.kill_until_none_new(lambda: guard.cgroup_pids(self.root))
            deadline = time.monotonic() + 1.0
            while guard.cgroup_populated(self.root) and time.monotonic() < deadline:
                time.sleep(0.01)  # killed processes leave the cgroup as they exit; rmdir needs it empty
        guard.remove_cgroup(self.root)

    def sweep(self, logger: logging.Logger) -> None:
        """Remove the empty cgroup trees that inits whose process is gone left behind (their daemon and guard
        were both killed). A populated one is only reported: its owner may live in another pid namespace."""
        try:
            names = os.listdir(self.parent)
        except OSError:
            return
        for name in names:
            match = STALE_RE.match(name)
            if match is None or os.path.join(self.parent, name) == self.root or _pid_exists(int(match[1])):
                continue
            path = os.path.join(self.parent, name)
            if guard.cgroup_populated(path):
                logger.warning("%s holds processes but the init that made it (pid %s) is gone", path, match[1])
            elif guard.remove_cgroup(path):
                logger.info("removed %s, left behind by an init that is gone", path)


#: the name of an init's cgroup directory: ``omha-<pid>-<hex>``
STALE_RE = re.compile(r"^omha-(\d+)-[0-9a-f]+$")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def cgroup2_parent() -> tuple[str | None, str]:
    """The directory of this process's own cgroup on a writable cgroup v2 mount, or None and why not."""
    own = None
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    own = line[3:].rstrip("\n")
    except OSError as exc:
        return None, f"cannot read /proc/self/cgroup: {exc.strerror}"
    if own is None or not own.startswith("/") or own.endswith(" (deleted)"):
        return None, "this process is in no cgroup v2 (no '0::' line in /proc/self/cgroup)"
    mounts: list[tuple[str, str, list[str]]] = []
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                fields, fstype = left.split(), right.split()[:1]
                if fstype == ["cgroup2"] and len(fields) >= 6:
                    mounts.append((_unescape(fields[4]), _unescape(fields[3]), fields[5].split(",")))
    except OSError as exc:
        return None, f"cannot read /proc/self/mountinfo: {exc.strerror}"
    if not mounts:
        return None, "no cgroup2 filesystem is mounted"
    mounts.sort(key=lambda m: m[0] != CGROUP_MOUNT)
    for point, root, opts in mounts:
        if "rw" not in opts:
            continue
        if root == "/":
            rel = own
        elif own == root or own.startswith(root + "/"):
            rel = own[len(root) :]
        else:
            continue
        path = os.path.normpath(point + rel)
        if os.path.isfile(os.path.join(path, "cgroup.procs")) and os.access(path, os.W_OK):
            return path, ""
    return None, f"no writable cgroup2 mount holds this process's cgroup {own} (mounts: {[m[0] for m in mounts]})"


def _unescape(field: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


# ----------------------------------------------------------------------------------------------- fallback


class MarkedCell(Cell):
    """The processes carrying one child's environment marker, its process group, and their descendants.

    A /proc scan can miss a process that forks and exits while the scan runs (a double fork in progress), so
    the cell counts as empty only after scans :data:`SETTLE` seconds apart have all found nothing.
    """

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self._needle = os.fsencode(f"{MARKER_VAR}={marker}\0")
        self._empty_since: float | None = None

    def prepare(self, argv: Sequence[str], env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        return list(argv), {**env, MARKER_VAR: self.marker}

    def members(self) -> set[int]:
        """The cell's live processes, from /proc."""
        return guard.descendants(guard.marked_pids(self._needle) | {self.pid}, (self.pid,))

    def signal(self, sig: int) -> None:
        if sig == signal.SIGKILL:
            guard.kill_until_none_new(self.members)
        else:
            guard.signal_pids(self.members(), sig, skip_pgids=(self.pid,))

    def populated(self) -> bool:
        if self.members():
            self._empty_since = None
            return True
        now = time.monotonic()
        if self._empty_since is None:
            self._empty_since = now
        return now - self._empty_since < SETTLE


class MarkedCells(Cells):
    """Cells told apart by an environment variable; see the module docstring for what they cannot see."""

    kind = "environment marker"

    def __init__(self) -> None:
        self.token = f"{os.getpid()}-{os.urandom(3).hex()}"
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


def open_cells(setting: str, logger: logging.Logger) -> Cells:
    """The cells an init uses: cgroups when ``setting`` is ``auto`` and this machine allows them, else markers."""
    if setting == "off":
        logger.info('cgroups are off ([init] cgroup = "off"): children are tracked by environment marker')
        return MarkedCells()
    parent, why = cgroup2_parent()
    if parent is not None:
        try:
            cells = CgroupCells(parent)
        except OSError as exc:
            why = f"cannot create a cgroup in {parent}: {exc.strerror or exc}"
        else:
            logger.debug("children are held in the cgroup %s", cells.root)
            cells.sweep(logger)
            return cells
    logger.warning(
        "cgroup v2 unavailable (%s): children are tracked by environment marker and /proc instead; a descendant "
        "that leaves the process tree and clears its environment escapes a stop",
        why,
    )
    return MarkedCells()
