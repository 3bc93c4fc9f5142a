"""Cells as cgroups v2: one directory per child below the init's own, entered before the child runs anything.

See :mod:`omha_core.init.cells` for why and how; the primitives shared with the guard (``cgroup.kill``,
``populated``, removal) are in :mod:`omha_core.init.guard`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import time
from collections.abc import Collection, Mapping, Sequence
from itertools import count

from omha_core.init import guard, owners
from omha_core.init.cells import Cell, Cells

#: the exit status of a child that could not enter its cgroup (it ran nothing)
EXIT_NO_CGROUP = 126
#: the usual mount point of the cgroup v2 hierarchy (preferred when there are several)
CGROUP_MOUNT = "/sys/fs/cgroup"


class CgroupCell(Cell):
    """A cgroup v2 directory holding one child and all its descendants."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.procs = os.path.join(path, "cgroup.procs")
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
    """Every child in its own cgroup below ``<parent>/omha-[<scope>-]<pid>-<start>-<hex>`` (created here;
    ``<start>`` is the init's start time, ``<scope>`` names the init's node, see :mod:`omha_core.init.owners`)."""

    kind = "cgroup"

    def __init__(self, parent: str, scope: str | None = None) -> None:
        self.parent = parent
        #: the scope of this init: its sweep only touches trees of the same scope
        self.scope = scope
        name = f"omha-{scope + '-' if scope else ''}{owners.own_name()}-{os.urandom(3).hex()}"
        self.root = os.path.join(parent, name)
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
        """Kill and remove the cgroup trees that inits which are gone left behind (their daemon and guard were both
        killed): their processes run supervised by nobody, and a restarted daemon would start a second copy of
        their groups. Trees of live inits (sibling daemons in the same cgroup), trees a live guard still names,
        trees of another scope (another node's or cluster's init in the same cgroup) and trees holding processes
        of another pid namespace are left alone."""
        for path, owner in dead_trees(self.parent, {self.scope}):
            if path != self.root:
                self._sweep_tree(path, owner, logger)

    def _sweep_tree(self, path: str, owner: str, logger: logging.Logger) -> None:
        if guard.cgroup_populated(path):
            if owners.cmdline_holds(sorted(guard.cgroup_pids(self.parent) - {0}), [b"--cgroup", os.fsencode(path)]):
                return  # the dead init's guard is stopping them right now
            pids = guard.cgroup_pids(path)
            if 0 in pids or not all(owners.in_own_pid_namespace(p) for p in pids):
                logger.warning(
                    "%s holds processes of another pid namespace (its init, pid %s there, cannot be judged from "
                    "here): left alone",
                    path,
                    owner,
                )
                return
            logger.warning(
                "%s: killing processes %s, left running unsupervised by an init that is gone (pid %s)",
                path,
                sorted(pids),
                owner,
            )
            guard.cgroup_kill(path)
            guard.kill_until_none_new(lambda: guard.cgroup_pids(path))
            deadline = time.monotonic() + 2.0
            while guard.cgroup_populated(path) and time.monotonic() < deadline:
                time.sleep(0.01)  # killed processes leave the cgroup as they exit; rmdir needs it empty
        if guard.remove_cgroup(path):
            logger.info("removed %s, left behind by an init that is gone", path)
        else:
            logger.warning("could not remove %s, left behind by an init that is gone (pid %s)", path, owner)


#: the name of an init's cgroup directory: ``omha-[<scope>-]<pid>-<start>-<hex>`` (``omha-<pid>-<hex>`` before
#: the start time was part of it)
STALE_RE = re.compile(rf"^omha-(?:({owners.SCOPE_PATTERN})-)?(\d+)-(?:(\d+)-)?[0-9a-f]+$")


def dead_trees(parent: str, scopes: Collection[str | None]) -> list[tuple[str, str]]:
    """The cgroup trees in ``parent`` made by inits of ``scopes`` that no longer run: their paths and their inits'
    pids (see :mod:`omha_core.init.owners`)."""
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    found = []
    for name in names:
        match = STALE_RE.match(name)
        if match is not None and match[1] in scopes and not owners.owner_alive(int(match[2]), match[3]):
            found.append((os.path.join(parent, name), match[2]))
    return found


def remove_emptied_trees(scopes: set[str]) -> list[str]:
    """Remove the empty cgroup trees that inits of ``scopes`` left in this process's cgroup; return their paths.

    An init removes its tree when it stops, and one that starts removes what dead inits of its scope left; but
    a node powered off for good (its daemon and guard killed, never started again: a test, a benchmark) leaves
    its last init's tree behind, empty. Whoever ran those nodes cleans up with this once they are all stopped.
    Trees still holding a process, and trees of live inits, are left alone.
    """
    parent, _ = cgroup2_parent()
    if parent is None:
        return []
    trees = [path for path, _owner in dead_trees(parent, scopes) if not guard.cgroup_populated(path)]
    return [path for path in trees if guard.remove_cgroup(path)]


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
