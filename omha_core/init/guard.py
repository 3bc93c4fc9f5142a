"""The guard: a tiny watchdog process that kills everything the init started when the daemon dies.

Another node takes a group over once this node is lost, so nothing the init started may run on
unsupervised after the daemon is killed (SIGKILL, OOM killer, a crash). A parent-death signal is not
enough: it reaches the ``sh -c`` the init started but not that shell's own children, and a process group is not
enough either: a descendant that calls ``setsid()`` (a daemon that double-forks) leaves it. So the init starts
this program once (:class:`omha_core.init.guardlink.GuardLink`), in its own session, with a pipe on its
standard input, and with where the init holds its children (:mod:`omha_core.init.cells`): ``--cgroup DIR``,
the init's cgroup v2 directory, or ``--marker OMHA_CELL=TOKEN.``, the environment variable every child of the
init inherits where cgroups are unavailable. It is told every process group the init creates (``+PGID``) and
every one that is gone (``-PGID``), and every resource-agent entry that may hold its resource
(``hold {"key": …, "label": …, "argv": […], "env": {…}, "timeout": …}``, one JSON line: the entry's ``release``
command) and every one released (``drop KEY``). When the pipe reaches end-of-file without a ``bye`` line, the
daemon is gone: the guard sends SIGTERM to every process it can find (the process groups, every process of the
cgroup tree or carrying the marker; resource agents' monitors release their resource on SIGTERM), waits up to
``GRACE`` seconds, kills whatever is left (``cgroup.kill`` on the whole tree, SIGKILL to the groups and marked
processes), then runs ``release`` for every held entry, one after the other in reverse order of holding, each
killed after its time-out (a ``wait``/``once`` agent such as ``@mount`` holds its resource with no process
left to kill, and a monitor killed before it finished releasing left its resource too; releases are
idempotent, so one that the monitor already did is harmless), removes the cgroup directories and exits.

This file runs as a script (``python -I -S guard.py GRACE [--cgroup DIR] [--marker PREFIX]``), so it imports
nothing but the standard library; the daemon imports it too, for the primitives below (process groups, cgroup
files, environment markers).

Its size (about 460 lines, over the core's ~400) is earned: a script run with ``-I -S`` from wherever the
package lies cannot import sibling modules without putting the package on ``sys.path`` and loading
``omha_core.init`` with what it imports, in a process that must stay small and start fast (about 10 MB RSS per
node, see ``bench/README.md``). Its four parts (process groups, cgroup v2, environment markers, the guard
program) are kept apart by the section rules below.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterable

#: seconds between SIGTERM and SIGKILL when the daemon died (agents release resources in that time)
DEFAULT_GRACE = 0.5
#: how many times :func:`marked_pids` reads again an environment found empty (a process inside execve)
EXEC_RETRIES = 3
#: the kernel-thread flag in /proc/PID/stat
PF_KTHREAD = 0x00200000


# ------------------------------------------------------------------------------------------- process groups


def proc_stat(pid: int | str, fields: int) -> list[bytes] | None:
    """The fields of ``/proc/<pid>/stat`` after ``pid (comm)`` (``state`` first, so the start time is index 19),
    split at most ``fields`` times; None when the process is gone. ``comm`` may hold spaces and parentheses, so
    the split starts after the last ')'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split(b" ", fields)


def _proc_stats() -> dict[int, tuple[bytes, int, int]] | None:
    """``{pid: (state, ppid, pgid)}`` for every process, from one /proc scan (None if /proc is unreadable)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    stats: dict[int, tuple[bytes, int, int]] = {}
    for name in names:
        if not name.isdigit():
            continue
        fields = proc_stat(name, 3)  # state ppid pgrp ...
        if fields is not None and len(fields) >= 3:
            stats[int(name)] = (fields[0], int(fields[1]), int(fields[2]))
    return stats


def live_state(state: bytes) -> bool:
    """A process in ``state`` (the stat field) runs: not a zombie, not dead."""
    return state not in (b"Z", b"X")


def _groups_with_live_members() -> set[int] | None:
    """Process groups holding a process that is not a zombie, from one /proc scan (None if /proc is unreadable)."""
    stats = _proc_stats()
    if stats is None:
        return None
    return {pgid for state, _, pgid in stats.values() if live_state(state)}


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


def signal_pids(pids: Iterable[int], sig: int, skip_pgids: Collection[int] = ()) -> None:
    """Send ``sig`` to each of ``pids`` except the members of the process groups ``skip_pgids`` (signalled as
    groups already: a second signal could run a trap twice); a process already gone is not an error."""
    for pid in pids:
        try:
            if skip_pgids and os.getpgid(pid) in skip_pgids:
                continue
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ------------------------------------------------------------------------------------------- cgroup v2


def cgroup_pids(path: str) -> set[int]:
    """Every process in the cgroup ``path`` and in the cgroups below it (none when it does not exist)."""
    pids: set[int] = set()
    for top, _dirs, _ in os.walk(path):
        try:
            with open(os.path.join(top, "cgroup.procs"), "rb") as fh:
                pids.update(int(p) for p in fh.read().split())
        except OSError:
            continue
    return pids


def cgroup_populated(path: str) -> bool:
    """True while a live process is in the cgroup ``path`` or below it (zombies do not count).

    The kernel keeps ``populated`` in ``cgroup.events`` for the whole subtree. A cgroup that does not exist holds
    nothing; one whose ``cgroup.events`` cannot be read otherwise counts as populated (never call a live process
    gone).
    """
    try:
        with open(os.path.join(path, "cgroup.events"), "rb") as fh:
            events = fh.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return b"populated 1" in events


def cgroup_kill(path: str) -> None:
    """SIGKILL every process in the cgroup ``path`` and below it, forks in flight included.

    ``cgroup.kill`` (Linux 5.14) does it atomically. Without it, the processes are killed one by one, round after
    round, until a round finds none that was not already killed (a process forked while its parent was being
    killed shows up in the next round).
    """
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as fh:
            fh.write("1")
        return
    except FileNotFoundError:
        if not os.path.isdir(path):
            return
    kill_until_none_new(lambda: cgroup_pids(path))


def kill_until_none_new(find: Callable[[], set[int]], rounds: int = 100) -> None:
    """SIGKILL every process ``find()`` returns, round after round, until two rounds in a row find none not
    already killed.

    For process sets the kernel cannot kill at once, found by scanning /proc: a process forked while its parent
    was being killed is missing from one round and found by the next, and one scan can miss a process that forked
    and exited while the scan ran (its child then shows up in the next).
    """
    killed: set[int] = set()
    quiet = 0
    for _ in range(rounds):
        fresh = find() - killed
        if not fresh:
            quiet += 1
            if quiet == 2:
                return
            continue
        quiet = 0
        signal_pids(fresh, signal.SIGKILL)
        killed |= fresh


def remove_cgroup(path: str) -> bool:
    """Remove the cgroup ``path`` and every cgroup below it (the emptied ones; deepest first). True when gone."""
    for top, _, _ in sorted(os.walk(path), key=lambda w: w[0].count("/"), reverse=True):
        try:
            os.rmdir(top)
        except OSError:
            pass
    return not os.path.exists(path)


# ------------------------------------------------------------------------------------------- environment markers


def marked_pids(marker: bytes) -> set[int]:
    """Live processes whose environment holds a variable starting with ``marker`` (``b"OMHA_CELL=T.1"``).

    The environment a process was started with is inherited through fork, exec and ``setsid()``, so it finds the
    descendants of a child wherever they were re-parented. Only processes whose environment this process may
    read are found (its own user's; every process for root); a zombie has none any more. A process in the middle
    of an ``execve`` shows an empty environment for a moment (the new image's is not set up yet): such processes
    are read again, a few times over a few milliseconds.
    """
    pids: set[int] = set()
    needle = b"\0" + marker
    try:
        pending = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return pids
    for attempt in range(EXEC_RETRIES + 1):
        empty: list[str] = []
        for name in pending:
            try:
                with open(f"/proc/{name}/environ", "rb") as fh:
                    environ = fh.read()
            except OSError:
                continue
            if not environ:
                empty.append(name)
            elif needle in b"\0" + environ:
                pids.add(int(name))
        pending = [name for name in empty if _user_process(name)]
        if not pending or attempt == EXEC_RETRIES:
            break
        time.sleep(0.002 * (attempt + 1))
    return pids


def _user_process(name: str) -> bool:
    """True for a live process that is not a kernel thread (those have no environment at all)."""
    fields = proc_stat(name, 7)
    return fields is not None and len(fields) > 6 and live_state(fields[0]) and not int(fields[6]) & PF_KTHREAD


# ------------------------------------------------------------------------------------------- the guard program


class Holdings:
    """Everything the guard must kill: the process groups it was told, and the cgroup tree or marker it was given."""

    def __init__(self, cgroup: str | None, marker: bytes | None) -> None:
        self.cgroup = cgroup
        self.marker = marker
        self.pgids: set[int] = set()

    def pids(self) -> set[int]:
        """Live processes of the cgroup tree and carrying the marker."""
        pids: set[int] = set()
        if self.cgroup is not None:
            pids |= cgroup_pids(self.cgroup)
        if self.marker is not None:
            pids |= marked_pids(self.marker)
        return pids

    def busy(self) -> bool:
        """True while anything is left: a live process group, a populated cgroup, a marked process."""
        self.pgids = live_groups(self.pgids)
        if self.pgids:
            return True
        if self.cgroup is not None and cgroup_populated(self.cgroup):
            return True
        return self.marker is not None and bool(marked_pids(self.marker))

    def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def kill(self, grace: float) -> bool:
        """SIGTERM everything, SIGKILL what is left after ``grace`` seconds; True when nothing is left."""
        for pgid in self.pgids:
            signal_group(pgid, signal.SIGTERM)
        signal_pids(self.pids(), signal.SIGTERM, skip_pgids=self.pgids)
        self._wait(grace)
        # killed even when the wait found nothing: a /proc scan can miss a process that forks and exits meanwhile
        for pgid in live_groups(self.pgids):
            signal_group(pgid, signal.SIGKILL)
        if self.cgroup is not None:
            cgroup_kill(self.cgroup)
        if self.marker is not None:
            marker = self.marker
            kill_until_none_new(lambda: marked_pids(marker))
        return self._wait(1.0)


class Hold:
    """A held resource-agent entry: how to release it (a plain class: the guard imports no ``typing``)."""

    __slots__ = ("argv", "env", "label", "timeout")

    def __init__(self, label: str, argv: list[str], env: dict[str, str], timeout: float) -> None:
        self.label = label
        self.argv = argv
        self.env = env
        self.timeout = timeout


class Releases:
    """The held resource-agent entries, in the order they became held, and how to release them all."""

    def __init__(self) -> None:
        self.specs: dict[str, Hold] = {}

    def read(self, line: bytes) -> bool:
        """Take a ``hold JSON`` or ``drop KEY`` line; False when ``line`` is neither (or malformed)."""
        if line.startswith(b"drop "):
            self.specs.pop(line[5:].decode(errors="replace"), None)
            return True
        if not line.startswith(b"hold "):
            return False
        import json  # only when there are agents to hold

        try:
            spec = json.loads(line[5:])
            key, argv, env, timeout = spec["key"], spec["argv"], spec["env"], float(spec["timeout"])
        except (ValueError, KeyError, TypeError):
            return False
        if not (
            isinstance(key, str)
            and isinstance(argv, list)
            and argv
            and all(isinstance(a, str) for a in argv)
            and isinstance(env, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        ):
            return False
        self.specs.pop(key, None)
        self.specs[key] = Hold(str(spec.get("label", key)), argv, env, timeout)
        return True

    def release_all(self) -> bool:
        """Run every held entry's ``release``, newest first, each killed after its time-out; True if all succeeded.

        Their output is discarded: the daemon that logged the guard's output is gone. Only the entries' labels
        appear in the guard's messages (their environments may hold secrets)."""
        import subprocess

        ok = True
        for spec in reversed(list(self.specs.values())):
            label = spec.label
            try:
                proc = subprocess.Popen(
                    spec.argv,
                    env=spec.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except (OSError, ValueError, TypeError) as exc:
                _say(f"{label}: cannot start release: {exc}")
                ok = False
                continue
            try:
                rc = proc.wait(spec.timeout)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                _say(f"{label}: release did not finish within {spec.timeout:g}s; killed it")
                ok = False
                continue
            if rc != 0:
                _say(f"{label}: release failed (exit status {rc})")
                ok = False
            else:
                _say(f"{label}: released")
        return ok


def _say(text: str) -> None:
    try:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
    except OSError:
        pass  # the daemon that read our stderr is gone


def _parse(argv: list[str]) -> tuple[float, str | None, bytes | None]:
    grace, cgroup, marker = DEFAULT_GRACE, None, None
    args = iter(argv[1:])
    for arg in args:
        if arg == "--cgroup":
            cgroup = next(args)
        elif arg == "--marker":
            marker = os.fsencode(next(args))
        else:
            grace = float(arg)
    return grace, cgroup, marker


def main(argv: list[str]) -> int:
    """Read ``+PGID`` / ``-PGID`` / ``hold JSON`` / ``drop KEY`` / ``bye`` lines from stdin until EOF; on EOF
    without ``bye`` kill every process and release every held resource."""
    grace, cgroup, marker = _parse(argv)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    held = Holdings(cgroup, marker)
    releases = Releases()
    for raw in sys.stdin.buffer:
        line = raw.strip()
        if line == b"bye":
            return 0
        if line[:5] in (b"hold ", b"drop "):
            if not releases.read(line):
                _say(f"ignoring malformed line {line[:40]!r}…")  # never all of it: it holds an environment
            continue
        if len(line) < 2 or line[:1] not in (b"+", b"-") or not line[1:].isdigit():
            _say(f"ignoring malformed line {line[:40]!r}")
            continue
        pgid = int(line[1:])
        if line[:1] == b"+":
            held.pgids.add(pgid)
        else:
            held.pgids.discard(pgid)
    status = 0
    if held.busy():
        _say("the daemon is gone: stopping every process it started")
        if not held.kill(grace):
            left = sorted(held.pgids | held.pids())
            _say(f"processes still alive after SIGKILL: {left}")
            status = 1
    if releases.specs:
        _say(f"the daemon is gone: releasing {len(releases.specs)} resource(s) it held")
        if not releases.release_all():
            status = 1
    if cgroup is not None and not remove_cgroup(cgroup):
        _say(f"could not remove the cgroup {cgroup}")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
