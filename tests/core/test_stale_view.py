"""A node whose view of the shared directory stops changing must not fence a healthy peer (found by the campaign).

The fault campaign's ``store_full`` fault replaced one node's view of the shared directory by a copy of it (on a
full tmpfs) for 1.6 s: that node saw every peer's heartbeat stop at once. Peers are not lost at once, though: the
one that published longest ago is lost ``dead_after`` after its last heartbeat, while the others still count as
alive for a moment. For that moment the node had quorum and fenced a healthy peer (``healthy-fenced``, random
seed 746669336 of ``tests/chaos/test_chaos.py``). Fencing now needs a quorum of peers heard from within
``isolate_after``.

Here: three daemons with a real fence device (``command`` powering a local node off). Node ``n3`` runs in its
own mount namespace; the test puts a copy of the shared directory over its view. Its writes go to the copy, so it
keeps "heartbeating" there while nobody sees it, and it sees nobody but one late heartbeat of ``n2`` (so that
the peers are lost a fixed 0.25 s apart rather than by the luck of their heartbeat phases). ``n3`` has a short
``dead_after`` (3 s), the others a long one (8 s): ``n3`` judges its peers lost well before they judge it, so a
fence by ``n3`` cannot be pre-empted by the others fencing ``n3`` first.

The rule holds only if, in the stale view, the peers' last heartbeats lie less than ``isolate_after``
(``dead_after / 2``) apart. Here they lie up to ~0.7 s apart (the 0.25 s late copy, the 0.2 s heartbeat phase of
each peer and ``n3``'s own 0.2 s cycle): with ``dead_after`` 1 s (``isolate_after`` 0.5 s, as this test first
had) the node could fence legitimately by the rule, and did in one CI run in about fifteen. With 3 s
(``isolate_after`` 1.5 s) the margin is twice the gap, and the test still fails without the rule (checked by
setting ``isolate_after`` to ``dead_after``).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow

GROUPS = ("g1", "g2", "g3")
N3_TIMING = {"dead_after": 3.0, "settle": 1.0}


class StaleViewCluster(Cluster):
    """Node n3 gets its own (short) dead_after; the others keep the cluster's long one."""

    def write_config(self, node: str) -> None:
        timing = self.sections["timing"]
        if node == "n3":
            self.sections["timing"] = {**timing, **N3_TIMING}
        try:
            super().write_config(node)
        finally:
            self.sections["timing"] = timing


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[StaleViewCluster]:
    require_commands("flock", "unshare", "nsenter", "mount")
    shared = str(tmp_path / "shared")
    cltab = "".join(f"{g}:{g}srv:run:respawn:{guarded(tmp_path, g)}\n" for g in GROUPS)
    c = StaleViewCluster(
        tmp_path,
        ["n1", "n2", "n3"],
        cltab=cltab,
        hactl="".join(f"{g} run\n" for g in GROUPS),
        devices=[fence_device(tmp_path, ["n1", "n2", "n3"])],
        config={
            "timing": {"heartbeat": 0.2, "dead_after": 8.0, "settle": 1.0},
            "fencing": {"action": "off"},
            "quorum": {"policy": "majority", "expected": 3},
        },
        # n3 in its own mount namespace, the shared directory bind-mounted onto itself there
        wrap={
            "n3": [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                'mount --bind "$0" "$0" && exec "$@"',
                shared,
            ]
        },
    )
    try:
        yield c
    finally:
        c.close()


def test_a_node_with_a_stale_view_of_the_store_fences_no_healthy_peer(cluster: StaleViewCluster) -> None:
    c = cluster
    c.start()
    placed = c.wait_for(
        "every group running once",
        lambda: all(len(c.running(g)) == 1 for g in GROUPS) and {g: c.running(g)[0] for g in GROUPS},
        60,
    )
    # n3 holds something only if decide spread the groups there; peers holding groups is what matters
    assert set(placed.values()) - {"n3"}, placed
    # n3's view of the shared directory becomes a copy: frozen for what the others write, private for its own
    spare = c.tmp / "stale-copy"
    spare.mkdir()
    script = 'mount -t tmpfs -o size=8m omha-stale "$0" && cp -a "$1/." "$0/" && mount --move "$0" "$1"'
    out = subprocess.run(
        ["nsenter", "-t", str(c.procs["n3"].pid), "-m", "sh", "-c", script, str(spare), str(c.shared)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    # One more of n2's heartbeats reaches n3's view a moment later (a store that lags, not one that stopped): n1
    # is then lost 0.25 s before n2 in n3's eyes, a window in which n3 counts two of three nodes alive.
    time.sleep(0.25)
    view = Path(f"/proc/{c.procs['n3'].pid}/root") / c.shared.relative_to("/") / "nodes" / "n2" / "status.json"
    shutil.copyfile(c.shared / "nodes" / "n2" / "status.json", view)
    # n3 judges its peers lost after 3 s; the others would judge n3 lost only after 8 s
    time.sleep(5.5)
    fenced: Any = (c.tmp / "n3" / "omha.log").read_text()
    assert c.procs["n1"].poll() is None and c.procs["n2"].poll() is None, f"a healthy peer was fenced:\n{fenced}"
    assert "fencing (off)" not in fenced, fenced
