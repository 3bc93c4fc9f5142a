"""Which init owns a cgroup tree or an environment marker, and whether that init still runs.

Every init names what it creates after itself: ``<pid>-<start>`` (:func:`own_name`), its pid and its start time
in clock ticks since boot (``/proc/PID/stat``, field 22). A pid alone is not enough: after a reboot-free crash
the number is reused, by another omha daemon as often as by anything else, and a tree whose owner "still runs"
would never be cleaned. The pair names one process for the life of the machine.

An init that starts cleans what dead inits left (:meth:`~omha_core.init.cells.Cells.sweep`): processes still
running in a dead init's cells were supervised by nobody, and a restarted daemon resuming its claim on their
group would start a second copy beside them. It leaves alone what it cannot judge: processes of another pid
namespace (their owner's pid means nothing here), and trees or markers that a live guard still names (the guard
of a daemon that just died is stopping them).

Several inits share one machine: the nodes of a local test cluster, a daemon restarted by a fault campaign beside
another cluster's, an ``omha local daemon`` beside an ``omha daemon``. Without a cgroup of their own they share
one cgroup and one process table, and a starting init must not take a neighbour's leftovers for its own: an init
that is gone on node ``b`` left ``b``'s processes, and only ``b``'s next start may judge them (``b``'s restarted
daemon resumes its claim on them; node ``a`` has no claim). So every name also carries a *scope*
(:func:`scope_of`, a short hash of the init's identity: node name and state directory for ``omha daemon``), and
a sweep only touches names of its own scope. Names without a scope (an init given none, or an older omha) are
only swept by inits without one.
"""

from __future__ import annotations

import hashlib
import os

from omha_core.init import guard


def start_time(pid: int | str) -> bytes | None:
    """Process ``pid``'s start time (clock ticks since boot, as text), or None when it is not running."""
    fields = guard.proc_stat(pid, 20)
    if fields is None or len(fields) < 20 or not guard.live_state(fields[0]):
        return None
    return fields[19]


def own_name() -> str:
    """``<pid>-<start>`` of this process: the owner part of the names of what this init creates."""
    return f"{os.getpid()}-{(start_time('self') or b'0').decode()}"


#: a scope as it appears in names: ``s`` and 8 hex digits (the letter keeps it apart from a pid)
SCOPE_PATTERN = r"s[0-9a-f]{8}"


def scope_of(*identity: str) -> str:
    """The scope of an init identified by ``identity`` (``omha daemon``: node name and state directory): the same
    for every start of that init, different for another node or cluster on the machine."""
    digest = hashlib.sha256("\0".join(identity).encode()).hexdigest()
    return f"s{digest[:8]}"


def owner_alive(pid: int, start: str | None) -> bool:
    """True while the process that created a name with ``pid`` (and ``start``, when the name carries one) runs.

    Without a start time (names made by an older omha), any live process with that pid counts as the owner:
    when in doubt, never take a live init's processes for a dead one's.
    """
    if start is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return start_time(pid) == start.encode()


def in_own_pid_namespace(pid: int) -> bool:
    """True when process ``pid`` is in this process's pid namespace (False when that cannot be read)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
    except OSError:
        return False


def cmdline_holds(pids: list[int] | None, words: list[bytes]) -> bool:
    """True when a live process among ``pids`` (None: every process) has ``words`` in a row on its command line
    (a guard started with ``--cgroup DIR`` or ``--marker PREFIX``)."""
    needle = b"\0" + b"\0".join(words) + b"\0"
    if pids is None:
        try:
            pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
        except OSError:
            return True  # cannot tell: assume a guard is at work
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = b"\0" + fh.read()
        except OSError:
            continue
        if needle in (cmdline if cmdline.endswith(b"\0") else cmdline + b"\0"):
            return True
    return False
