"""CTS scenarios of starting and stopping daemons: StartOnebyOne, SimulStart, SimulStop, StopOnebyOne,
RestartOnebyOne, RestartAll, Flip. Each is followed by the audit (:func:`tests.cts.audit.audit`).

Daemons are stopped the way an operator (or systemd) stops them, with SIGTERM: a daemon stops its groups, releases
their claims and says so in its last status, so its groups move without anybody being fenced. A node alone has
no quorum (``expected = 3``): it stops its groups and starts nothing.
"""

from __future__ import annotations

import time

import pytest

from tests.cts.audit import CtsCluster, audit, quiet, starts

pytestmark = pytest.mark.slow


def no_quorum_seen(c: CtsCluster, node: str) -> bool:
    """``node`` publishes that it has no quorum (it is up and has judged)."""
    st = c.report()
    return st["nodes"].get(node, {}).get("state") == "up" and st["observer"] == node and not st["quorum"]["have"]


def test_StartOnebyOne(cts: CtsCluster) -> None:
    cts.terminate(*cts.names)
    audit(cts, since=time.time(), running=False)
    since = time.time()
    cts.start("n1")
    cts.wait_up("n1")
    cts.wait_for("n1 to judge it has no quorum", lambda: no_quorum_seen(cts, "n1"))
    audit(cts, since=since, running=False)
    cts.start("n2")
    placed = audit(cts, since=since)
    assert set(placed.values()) <= {"n1", "n2"}
    assert all(len(starts(cts, g, since)) == 1 for g in cts.groups)
    cts.start("n3")
    cts.wait_up("n3")
    # the third node joins a running cluster: it takes nothing over, nothing starts again
    assert audit(cts, since=since) == placed
    quiet(cts, placed)


def test_SimulStart(cts: CtsCluster) -> None:
    cts.terminate(*cts.names)
    since = time.time()
    cts.start()
    placed = audit(cts, since=since)
    assert all(len(starts(cts, g, since)) == 1 for g in cts.groups), "a group started more than once"
    quiet(cts, placed)


def test_SimulStop(cts: CtsCluster) -> None:
    since = time.time()
    cts.terminate(*cts.names)
    audit(cts, since=since, running=False)
    statuses = cts.report()["nodes"]
    assert all(statuses[n]["state"] == "stopped" for n in cts.names), statuses


def test_StopOnebyOne(cts: CtsCluster) -> None:
    since = time.time()
    cts.terminate("n1")
    placed = audit(cts, since=since)
    assert set(placed.values()) <= {"n2", "n3"}
    cts.terminate("n2")
    # n3 alone: no quorum, so it stops its groups too, and fences nobody
    audit(cts, since=since, running=False)
    cts.terminate("n3")
    audit(cts, since=since, running=False)


def test_RestartOnebyOne(cts: CtsCluster) -> None:
    since = time.time()
    for node in cts.names:
        cts.terminate(node)
        audit(cts, since=since)
        cts.start(node)
        cts.wait_up(node)
        placed = audit(cts, since=since)
    quiet(cts, placed)


def test_RestartAll(cts: CtsCluster) -> None:
    since = time.time()
    cts.terminate(*cts.names)
    audit(cts, since=since, running=False)
    cts.start()
    placed = audit(cts, since=since)
    assert all(len(starts(cts, g, since)) == 1 for g in cts.groups)
    quiet(cts, placed)


def test_Flip(cts: CtsCluster) -> None:
    """A node's daemon stopped and started back: its groups move away, and stay away when it is back."""
    since = time.time()
    before = audit(cts, since=since)
    node = max(cts.names, key=lambda n: sum(1 for h in before.values() if h == n))
    cts.terminate(node)
    moved = audit(cts, since=since)
    assert node not in moved.values()
    assert all(moved[g] == h for g, h in before.items() if h != node), "a group of another node moved"
    cts.start(node)
    cts.wait_up(node)
    assert audit(cts, since=since) == moved
    quiet(cts, moved)
