"""CTS scenarios of failures: ResourceRecover, ComponentFail, NearQuorumPoint, Reattach; each followed by the audit
(:func:`tests.cts.audit.audit`). Signals are real (SIGKILL of a group's process, of a daemon, of its guard), and
so is fencing: the cluster's fence device kills every process of the node before it reports success.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.cts.audit import CtsCluster, alive, audit, cluster_processes, kill_process, quiet, starts

pytestmark = pytest.mark.slow


#: what a daemon logs when it kills what a dead predecessor (daemon and guard both gone) left running
SWEPT = "left running unsupervised by an init that is gone"


def busiest(c: CtsCluster, placed: dict[str, str], among: list[str] | None = None) -> str:
    """The node running the most groups (of ``among``)."""
    return max(among or c.live(), key=lambda n: (sum(1 for h in placed.values() if h == n), n))


def test_ResourceRecover(cts: CtsCluster) -> None:
    """A group's process dies (SIGKILL): the init respawns it in place; nothing moves, nobody is fenced."""
    since = time.time()
    before = audit(cts, since=since)
    group = cts.groups[0]
    node = before[group]
    victim = starts(cts, group)[-1].pid
    kill_process(victim)
    cts.wait_for(f"{group} respawned", lambda: [s.node for s in starts(cts, group, since)] == [node])
    after = audit(cts, since=since, fenced=())
    assert after == before
    assert not alive(victim)
    quiet(cts, after)


def test_ComponentFail(cts: CtsCluster) -> None:
    """The daemon of the busiest node is SIGKILLed: its guard kills its groups, a survivor fences the node, and only
    then are its groups started elsewhere, each once; the other groups stay where they are."""
    since = time.time()
    before = audit(cts, since=since)
    victim = busiest(cts, before)
    held = [g for g, n in before.items() if n == victim]
    cts.kill(victim, signal.SIGKILL)
    after = audit(cts, since=since, fenced={victim}, before=before)
    for g, n in before.items():
        if n == victim:
            assert after[g] != victim and [s.node for s in starts(cts, g, since)] == [after[g]], cts.safety_log(g)
        else:
            assert after[g] == n, f"{g} moved from {n} although only {victim} failed"
    assert held
    quiet(cts, after)


def test_NearQuorumPoint(cts: CtsCluster) -> None:
    """Kill down to exactly quorum (2 of 3): the lost node is fenced, its groups move. One below (1 of 3): the
    survivor stops its groups, starts nothing and fences nobody. Quorum back: the second node is fenced before its
    groups start again."""
    since = time.time()
    before = audit(cts, since=since)
    first = busiest(cts, before)
    cts.kill(first, signal.SIGKILL)
    at_quorum = audit(cts, since=since, fenced={first}, before=before)

    below = time.time()
    second = busiest(cts, at_quorum)
    survivor = next(n for n in cts.names if n not in (first, second))
    cts.kill(second, signal.SIGKILL)
    audit(cts, since=below, fenced=(), running=False)
    for _ in range(10):  # for several more cycles: nothing starts, nobody is fenced, the survivor lives on
        time.sleep(0.2)
        assert not cluster_processes(cts.cluster_name)
    assert all(not starts(cts, g, below) for g in cts.groups), "a group started without quorum"
    assert cts.fence_record(second) == {} or float(cts.fence_record(second)["time"]) < below
    assert cts.procs[survivor].poll() is None
    assert cts.report()["quorum"]["have"] is False

    # quorum back: the first node rejoins; the second, lost while holding groups, is fenced before they start
    back = time.time()
    cts.start(first)
    cts.wait_up(first)
    audit(cts, since=back, fenced={second}, before=at_quorum)


def test_Reattach(cts: CtsCluster) -> None:
    """Every daemon restarted while its groups run: daemon and guard of every node SIGKILLed (the groups run on,
    unsupervised), then every daemon started again.

    omha does not re-adopt the processes of a previous daemon. The README: "the next daemon started on the node
    kills and removes what they left running ... before it starts anything, so a group is never run twice on one
    node". So each group is restarted once, on the node that still holds its claim; the old processes are gone
    (each node's new daemon kills what its predecessor left in its cgroup), and no old instance still held its
    group's lock when the new one started (no OVERLAP). Nobody is fenced: every node is back within
    ``dead_after`` of the others' first look.
    """
    since = time.time()
    before = audit(cts, since=since)
    old = {p.pid for p in cluster_processes(cts.cluster_name)}
    for node in cts.names:
        cts.kill(node, signal.SIGSTOP)  # frozen, it cannot restart its guard in the moment between the two kills
        for guard in cts.guards[node]:
            kill_process(guard)
        cts.kill(node, signal.SIGKILL)
    time.sleep(0.5)
    assert old and all(alive(p) for p in old), "the groups did not run on without their daemon and guard"
    swept = {n: cts.log(n).count(SWEPT) for n in cts.names}
    restart = time.time()
    cts.start()
    after = audit(cts, since=restart, fenced=())
    assert not any(alive(p) for p in old), "a process of the killed daemons survived the restart"
    for g in cts.groups:
        assert [s.node for s in starts(cts, g, restart)] == [after[g]], cts.safety_log(g)
    assert after == before, "a group moved although its node restarted at once"
    for n in set(before.values()):  # each node's new daemon killed its predecessor's groups (in its own cgroup)
        assert cts.log(n).count(SWEPT) > swept[n], cts.log(n)
    quiet(cts, after)


def test_audit_sees_a_second_instance_started_behind_the_init(cts: CtsCluster) -> None:
    """The audit is not blind: a copy of a group's process started outside any init (as a node would leave one
    behind) fails it, although every daemon still publishes a healthy cluster."""
    since = time.time()
    placed = audit(cts, since=since)
    group = cts.groups[0]
    other = next(n for n in cts.names if n != placed[group])
    env = {**os.environ, "OMHA_CLUSTER": cts.cluster_name, "OMHA_NODE": other, "OMHA_GROUP": group}
    stray = subprocess.Popen(["sleep", "300"], env=env)
    try:
        with pytest.raises(AssertionError, match=rf"{group}: published on {placed[group]}, processes on"):
            audit(cts, since=since, timeout=1.0)
    finally:
        stray.kill()
        stray.wait()
    assert audit(cts, since=since) == placed


def test_Reattach_one_node(cts: CtsCluster) -> None:
    """One node's daemon and guard SIGKILLed while its groups run, its daemon started again at once.

    The new daemon first waits ``dead_after`` for the old one's status to stay still (it cannot tell a dead
    predecessor from a frozen one sooner), so the others find the node silent for ``dead_after``: they fence it,
    which kills the new daemon and the groups the old one left running, and only then start its groups. The node
    stays down (a real one would reboot)."""
    since = time.time()
    before = audit(cts, since=since)
    node = busiest(cts, before)
    old = {p.pid for p in cluster_processes(cts.cluster_name) if p.node == node}
    cts.kill(node, signal.SIGSTOP)
    for guard in cts.guards[node]:
        kill_process(guard)
    cts.kill(node, signal.SIGKILL)
    assert old and all(alive(p) for p in old)
    cts.start(node)
    assert cts.procs[node].wait(30) == -signal.SIGKILL, "the restarted node was not fenced"
    after = audit(cts, since=since, fenced={node}, before=before)
    assert not any(alive(p) for p in old)
    assert node not in after.values()
