"""A daemon asked to stop (SIGTERM, ``omha shutdown``) hands its groups over safely, with real daemons.

Stopping can take longer than ``dead_after`` (a server that needs its grace period), and a stop can fail (a
filesystem that will not unmount). In neither case may another node start the group while this node may still
run it or hold its resources; and a node that stopped cleanly must not be fenced.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(cltab: str) -> Cluster:
        device = fence_device(tmp_path, ["n1", "n2", "n3"])
        device["command"] = f'echo "$OMHA_NODE" >> {tmp_path}/fence-calls; ' + device["command"]
        c = Cluster(
            tmp_path, 3, cltab=cltab, hactl="web run\n", devices=[device], config={"fencing": {"action": "off"}}
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def fence_calls(tmp: Path) -> list[str]:
    path = tmp / "fence-calls"
    return path.read_text().split() if path.exists() else []


def test_a_stop_slower_than_dead_after_is_waited_for_not_fenced_or_taken_over(cluster: Any, tmp_path: Path) -> None:
    # the server ignores SIGINT and SIGTERM: it goes only at the SIGKILL of the last stop step, 3 s later
    # (stop_grace 0, +1, +2 in the test cluster), three times dead_after
    stubborn = "sh -c 'trap \"\" INT TERM; while :; do sleep 0.1; done'"
    c = cluster(f"web:srv:run:respawn:{guarded(tmp_path, 'web', stubborn)}\n")
    c.start()
    holder = c.wait_running("web")
    c.kill(holder, signal.SIGTERM)  # returns once the daemon exited
    assert c.procs[holder].returncode == 0
    new = c.wait_running("web", 30, exclude=(holder,))
    starts = [ln.split()[1] for ln in c.safety_log("web") if ln.startswith("start")]
    assert starts == [holder, new]  # and close() checks that no start ever found the lock held
    assert fence_calls(tmp_path) == []
    assert all(f"{holder} lost while holding" not in c.log(n) for n in c.names)
    assert c.report()["nodes"][holder]["state"] == "stopped"


def test_a_failed_stop_keeps_the_claim_until_the_node_is_fenced(cluster: Any, tmp_path: Path) -> None:
    marker = tmp_path / "held"
    c = cluster(f"web:res:run:wait:@file {marker}\nweb:srv:run:respawn:{guarded(tmp_path, 'web')}\n")
    c.start()
    holder = c.wait_running("web")
    marker.unlink()
    (marker / "pinned").mkdir(parents=True)  # the @file release cannot remove a non-empty directory
    c.kill(holder, signal.SIGTERM)
    assert c.procs[holder].returncode == 1
    assert "could not stop web: keeping the claims" in c.log(holder)
    shutil.rmtree(marker)  # what powering the node off does to its resources (here, all nodes share one path)
    c.wait_running("web", 30, exclude=(holder,))
    assert fence_calls(tmp_path) == [holder]  # taken over only after fencing the node that failed to stop
    record = c.fence_record(holder)
    assert record["ok"]
    # one node breaks the claim, the fencer: concurrent breaks could hand the group to two new claimants
    assert [n for n in c.names if f"breaking {holder}'s claim" in c.log(n)] == [record["by"]]
