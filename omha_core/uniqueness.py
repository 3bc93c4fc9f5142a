"""One daemon per node name: the guards that keep two daemons from acting as the same node.

Claims, status and fencing records are all keyed by node name, so two daemons that believe they are the same
node (a copied config, two hosts with the same short hostname, a second ``omha daemon`` started by hand) would
each take the other's claims for their own and run the same group twice. Three guards prevent it:

1. :func:`lock_state_dir`: an exclusive ``flock`` on ``<state_dir>/daemon.lock`` for the daemon's lifetime
   catches a second daemon on the same host at once;
2. :func:`wait_out_previous`: before a daemon publishes anything or touches a claim, it watches the status
   already published under its node name; if that status keeps changing (another incarnation heartbeats) it
   refuses to start. A status left by a dead or cleanly stopped earlier incarnation is fine: the daemon
   resumes its claims, as after a crash;
3. :func:`impostor`: every cycle, a status under our name with another incarnation means another daemon
   publishes as this node; the daemon then stops every local group and exits (both daemons do), which is safe:
   the node looks lost to the others, who fence it and take its groups over.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any

from omha_core.backends import Store
from omha_core.errors import OmhaError
from omha_core.status import NodeStatus, StatusProblem, parse_status


class DuplicateNode(OmhaError):
    """Another daemon runs (or ran a moment ago) as this node."""


def lock_state_dir(state_dir: str) -> int:
    """Take the exclusive per-node lock in ``state_dir``; return its descriptor (kept open for life).

    Raises :class:`DuplicateNode` naming the holder's pid when another daemon holds it.
    """
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "daemon.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DuplicateNode(
            f"{path} is locked by another omha daemon (pid {holder}) using the same state directory; "
            "stop it first, or give this one its own [daemon] state_dir and node name"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def describe(status: NodeStatus) -> str:
    """Who published ``status``: incarnation, pid and host, for error messages."""
    raw = status.raw
    host = raw.get("host")
    where = f" on host {host}" if isinstance(host, str) else ""
    return f"incarnation {status.incarnation}, pid {raw.get('pid', '?')}{where}"


def _own(store: Store, node: str) -> NodeStatus | None:
    doc = store.statuses().get(node)
    if doc is None:
        return None
    parsed = parse_status(node, doc)
    return None if isinstance(parsed, StatusProblem) else parsed


def _stopped(status: NodeStatus) -> bool:
    """Did this status come from a daemon that shut down cleanly (nothing left running)?"""
    return status.shutting_down and all(not inst.active for inst in status.groups.values())


def wait_out_previous(
    store: Store,
    node: str,
    dead_after: float,
    poll: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> NodeStatus | None:
    """Make sure no other daemon publishes as ``node``; return the previous incarnation's last status, if any.

    A status that does not change for ``dead_after`` seconds (the same rule the other nodes use to declare a node
    lost) belongs to a dead daemon; one that says it shut down cleanly is accepted at once. A status that changes
    while we watch raises :class:`DuplicateNode`.
    """
    first = _own(store, node)
    if first is None or _stopped(first):
        return first
    deadline = clock() + dead_after
    while clock() < deadline:
        sleep(poll)
        now = _own(store, node)
        if now is not None and (now.incarnation, now.seq) != (first.incarnation, first.seq):
            if _stopped(now):
                return now
            raise DuplicateNode(
                f"another omha daemon is running as node {node!r} ({describe(now)}); refusing to start a second "
                "one: give each node its own node name (`node` in omha.toml, default the short hostname)"
            )
    return first


def impostor(raw: Mapping[str, Any], node: str, incarnations: Collection[str]) -> str | None:
    """A message when the status under our node name was written by an incarnation not in ``incarnations``
    (ours, and the dead predecessor :func:`wait_out_previous` found), else None."""
    doc = raw.get(node)
    inc = doc.get("incarnation") if isinstance(doc, Mapping) else None
    if doc is None or (isinstance(inc, str) and inc in incarnations):
        return None  # ours (the usual case, every cycle): no need to parse the rest
    parsed = parse_status(node, doc)
    if not isinstance(parsed, NodeStatus) or parsed.incarnation in incarnations:
        return None
    return f"another omha daemon publishes as node {node!r} ({describe(parsed)})"
