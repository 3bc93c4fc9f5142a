"""CTS scenario Stonithd: fencing through the real ClusterLabs ``fence_apc_snmp`` agent against snmpsim.

Pacemaker's StonithdTest fences a node by hand (``stonith_admin --reboot``), waits for it to come back, and
audits. Here the cluster's only fence device is the core's ``fence_agent`` kind running ``fence_apc_snmp``
against a simulated APC strip (:mod:`omha_testing.snmpsim`), and each node is *wired*
to its outlet: when the outlet's relay opens, every process of that node is killed before the strip reports the
outlet off (the simulator's ``wiring`` option). So "fenced" means what it means on hardware, and a takeover
before the power cut would be caught by the audit.

Two cases on one three-node cluster:

- an operator's ``omha fence NODE --action off``: the node goes dark, the others find it lost, fence it
  themselves through the agent (a record, verified) and take its groups over; ``--action on`` and the node
  "boots" (its daemon starts) and rejoins, taking nothing back;
- a frozen node (its daemon SIGSTOPped, its groups running on): only the power cut through the strip stops
  them, and the groups move only after it.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from collections.abc import Iterator

import pytest
from omha_testing import require_commands
from omha_testing.snmpsim import Simulator, start_simulator

from tests.cts.audit import CtsCluster, audit, quiet, starts
from tests.cts.conftest import NODES, make_cts_cluster

pytestmark = pytest.mark.slow

COMMUNITY = "apc-8641"
OUTLETS = {"n1": "6", "n2": "7", "n3": "8"}


def fence_apc_snmp_path() -> str:
    path = shutil.which("fence_apc_snmp") or shutil.which("fence_apc_snmp", path="/usr/sbin:/sbin")
    if path is None or shutil.which("snmpget") is None:
        pytest.skip("needs fence_apc_snmp and snmpget (Debian packages fence-agents, snmp; 'make test' installs them)")
    return path


@pytest.fixture(scope="module")
def pdu_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CtsCluster, Simulator]]:
    """Three nodes fenced only through fence_apc_snmp at a simulated strip whose outlets power them."""
    require_commands("flock")
    agent = fence_apc_snmp_path()
    pytest.importorskip("snmpsim", reason="needs snmpsim (pip install 'omha-fence-powerstrip[test]')")
    base = tmp_path_factory.mktemp("stonithd")
    kill = f"{sys.executable} -m omha_core.localcluster power-off {base}"
    wiring = base / "wiring.json"
    wiring.write_text(json.dumps({f"{COMMUNITY}/{o}": f"{kill} {n}" for n, o in OUTLETS.items()}))
    sim = start_simulator(base / "snmpsim", wiring=wiring)
    secret = base / "community"
    secret.write_text(COMMUNITY + "\n")
    device = {
        "name": "pdu",
        "kind": "fence_agent",
        "agent": agent,
        "args": {"ip": sim.host, "ipport": sim.port, "snmp_version": "1"},
        "community_file": str(secret),
        "nodes": OUTLETS,
    }
    c = make_cts_cluster(base, [device])
    try:
        for node in NODES:  # the recording has some outlets off: power every node's outlet on first
            c.omha(node, "fence", node, "--action", "on")
        c.start()
        yield c, sim
    finally:
        try:
            c.close()
        finally:
            sim.stop()


def outlet(sim: Simulator, node: str) -> str:
    return sim.outlet_state(COMMUNITY, int(OUTLETS[node]))


def power_on_and_boot(c: CtsCluster, sim: Simulator, node: str) -> None:
    """Switch ``node``'s outlet on through omha (the real agent again), then "boot" it: start its daemon."""
    c.omha(next(n for n in c.live() if n != node), "fence", node, "--action", "on")
    assert outlet(sim, node) == "on"
    c.start(node)
    c.wait_up(node)


def test_Stonithd(pdu_cluster: tuple[CtsCluster, Simulator]) -> None:
    c, sim = pdu_cluster
    since = time.time()
    before = audit(c, since=since, fenced=())
    assert all(outlet(sim, n) == "on" for n in c.names)

    # an operator fences the busiest node by hand from another node
    victim = max(c.names, key=lambda n: (sum(1 for h in before.values() if h == n), n))
    operator = next(n for n in c.names if n != victim)
    c.omha(operator, "fence", victim, "--action", "off")
    assert outlet(sim, victim) == "off"
    assert c.procs[victim].wait(10) == -signal.SIGKILL, "the outlet went off but the node's daemon lives on"
    after = audit(c, since=since, fenced={victim}, before=before)
    record = c.fence_record(victim)
    assert record["device"] == "pdu" and record["kind"] == "fence_agent" and record["verified"], record
    assert all(outlet(sim, n) == "on" for n in c.names if n != victim)
    power_on_and_boot(c, sim, victim)
    assert audit(c, since=since, fenced={victim}) == after
    quiet(c, after)

    # a frozen node: its groups run on until the power cut
    frozen_at = time.time()
    before = after
    victim = max(c.names, key=lambda n: (sum(1 for h in before.values() if h == n), n))
    held = [g for g, n in before.items() if n == victim]
    c.kill(victim, signal.SIGSTOP)
    assert c.procs[victim].wait(30) == -signal.SIGKILL, "the frozen node was not powered off"
    after = audit(c, since=frozen_at, fenced={victim}, before=before, away={victim})
    assert outlet(sim, victim) == "off"
    for g in held:
        assert [s.node for s in starts(c, g, frozen_at)] == [after[g]], c.safety_log(g)
    power_on_and_boot(c, sim, victim)
    assert audit(c, since=frozen_at, fenced={victim}) == after
