"""CTS scenario SplitBrain: a partition in the etcd setup, then heal; audited.

Three daemons keep membership, statuses and claims in a real etcd (:mod:`omha_testing.etcd`); each runs in a network
namespace of its own and reaches etcd over its own veth link (:mod:`tests.cts.netns`). The partition: the busiest
node's link goes dark (packets dropped, connections time out). No fence device: a lost node's groups are taken over
after ``unfenced_grace``, so safety rests on the minority stopping its own groups (its lease lost, or no contact
with the store for ``isolate_after``) before the majority sees its lease expire. The majority (2 of 3: quorate)
keeps its groups and takes the minority's; the minority's daemon lives on with nothing running. Healed, it rejoins
and takes nothing back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands, require_root
from omha_testing.etcd import ETCD_TIMING, EtcdCluster, EtcdLocalCluster

from tests.cts.audit import CtsCluster, audit, quiet, starts
from tests.cts.conftest import GROUPS, NODES
from tests.cts.netns import NodeNets

pytestmark = [pytest.mark.root, pytest.mark.slow]


class NetEtcd(EtcdCluster):
    """A one-member etcd that also listens on the host end of every node's link."""

    def __init__(self, nets: NodeNets) -> None:
        super().__init__(1)
        self.nets = nets

    def _plan(self) -> None:
        super()._plan()
        for m in self.members:
            urls = [m.client_url, *(f"http://{n.host_ip}:{m.client_port}" for n in self.nets.nets.values())]
            m.extra_args = [*m.extra_args, "--listen-client-urls", ",".join(urls)]

    def url_for(self, node: str) -> str:
        """The etcd endpoint as ``node`` reaches it, over its own link."""
        return f"http://{self.nets.nets[node].host_ip}:{self.members[0].client_port}"


class CtsEtcdCluster(CtsCluster, EtcdLocalCluster):
    """The CTS cluster on etcd: the audit's helpers, reading status and fence records from etcd."""


@pytest.fixture
def partitioned(tmp_path: Path) -> Iterator[tuple[CtsEtcdCluster, NodeNets]]:
    require_root()
    require_commands("ip", "etcd", "etcdctl", "flock")
    with NodeNets(NODES) as nets:
        etcd = NetEtcd(nets)
        try:
            etcd.start()
            kw: dict[str, Any] = {
                "etcd": etcd,
                "nodes": list(NODES),
                "endpoints": {n: [etcd.url_for(n)] for n in NODES},
                "wrap": {n: nets.wrap(n) for n in NODES},
                "config": {
                    "quorum": {"expected": 3},
                    "fencing": {"action": "off", "unfenced_grace": 1.0},
                    "timing": dict(ETCD_TIMING),
                },
            }
            c = CtsEtcdCluster(tmp_path, GROUPS, **kw)
            try:
                c.load(c.cltab_text, c.hactl_text)
                c.start()
                yield c, nets
            finally:
                c.close()
        finally:
            etcd.stop()


def test_SplitBrain(partitioned: tuple[CtsEtcdCluster, NodeNets]) -> None:
    c, nets = partitioned
    before = audit(c, since=time.time(), fenced=(), timeout=60)
    victim = max(c.names, key=lambda n: (sum(1 for h in before.values() if h == n), n))
    held = [g for g, n in before.items() if n == victim]
    assert held

    since = time.time()
    nets.cut(victim)
    after = audit(c, since=since, fenced=(), away={victim}, timeout=60)
    for g, n in before.items():
        if n == victim:
            assert after[g] != victim and [s.node for s in starts(c, g, since)] == [after[g]], c.safety_log(g)
        else:
            assert after[g] == n, f"{g} moved from {n} although only {victim} was cut off"
    assert c.procs[victim].poll() is None, "the cut-off daemon exited"
    assert "stopping every local group" in c.log(victim)
    assert c.report()["nodes"].get(victim, {}).get("state") in (None, "unfenced")

    nets.heal(victim)
    c.wait_for(f"{victim} back", lambda: c.report()["nodes"].get(victim, {}).get("state") == "up", 30)
    assert audit(c, since=since, fenced=()) == after
    quiet(c, after)
