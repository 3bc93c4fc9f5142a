"""One three-node cluster shared by the CTS scenarios of a module, brought back to its baseline before each.

Pacemaker's CTS runs its scenarios one after another on one cluster, auditing after each; so do these, which
keeps the whole run short (a cluster starts once per module). Each test still starts from a known state, the
*baseline*: every daemon running and up, every group running exactly once (audited). A scenario that left a node
down (a fenced node, a failed test) is healed by the next baseline, which starts the daemons that are not running.

The cluster: nodes n1..n3 sharing a directory, quorum ``majority`` of ``expected = 3`` (so a node alone never
believes it is the whole cluster, even on its first start), and a ``command`` fence device that pulls the plug
(:func:`omha_core.localcluster.power_off`: the daemon and every process of the node SIGKILLed before it reports
success), fencing action ``off``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands

from omha_core.localcluster import fence_device
from tests.cts.audit import CtsCluster, audit

NODES = ["n1", "n2", "n3"]
GROUPS = ["ga", "gb", "gc", "gd"]
#: a little slower than the local cluster's defaults: a stall of a loaded test machine is not a failover
TIMING = {"heartbeat": 0.2, "dead_after": 1.5, "settle": 1.5}


def make_cts_cluster(base: Path, devices: list[dict[str, Any]] | None = None) -> CtsCluster:
    """The CTS cluster in ``base`` (not started); fenced by ``devices``, by default one that pulls the plug."""
    return CtsCluster(
        base,
        GROUPS,
        nodes=list(NODES),
        devices=devices if devices is not None else [fence_device(base, NODES)],
        config={"quorum": {"expected": 3}, "fencing": {"action": "off"}, "timing": dict(TIMING)},
    )


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CtsCluster]:
    """The module's cluster, started; stopped at the end with a last check that no group ever overlapped."""
    require_commands("flock")
    c = make_cts_cluster(tmp_path_factory.mktemp("cts"))
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def cts(shared_cluster: CtsCluster) -> CtsCluster:
    """The shared cluster at its baseline: every daemon up, every group running once (audited)."""
    c = shared_cluster
    down = [n for n in c.names if n not in c.live()]
    if down:
        c.start(*down)
    c.wait_up(*c.names)
    audit(c, since=time.time(), fenced=None, timeout=60)
    return c
