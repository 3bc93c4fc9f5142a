"""The ``two_node`` quorum policy (corosync votequorum ``two_node`` + ``wait_for_all``) and ``omha check``'s
warning about a two-node cluster left at ``majority``; then with real daemons: a pair fails over after a SIGKILL
(fenced first), a lone node started fresh starts nothing, and without a fence device a node alone is not
quorate."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

from omha_core.config import validate_config
from omha_core.localcluster import fence_device
from omha_core.quorum import Quorum, check_warnings


def test_alone_only_after_complete_and_with_a_fence_device(tmp_path: Path) -> None:
    state = tmp_path / "quorum.json"
    q = Quorum({"policy": "two_node"}, str(state))
    assert not q.update(1, peer_fenceable=True) and "waiting for both nodes" in q.reason  # wait_for_all
    assert q.update(2)
    assert q.update(1, peer_fenceable=True) and "fence race" in q.reason
    assert not q.update(1, peer_fenceable=False) and "no fence device" in q.reason
    # remembered across a restart of the daemon
    again = Quorum({"policy": "two_node"}, str(state))
    assert again.update(1, peer_fenceable=True)
    # a third node ever seen: not a pair, one node alone is never quorate
    assert again.update(3) and not again.update(1, peer_fenceable=True) and again.update(2)


def warnings(tmp_path: Path, quorum: dict[str, Any], nodes: list[str]) -> list[str]:
    devices = [fence_device(tmp_path, nodes)] if nodes else []
    raw = {"sharedfs": {"path": str(tmp_path)}, "quorum": quorum, "fencing": {"devices": devices}}
    return check_warnings(validate_config(raw))


def test_check_warns_about_a_pair_left_at_majority(tmp_path: Path) -> None:
    assert "at 'majority' never fails over" in warnings(tmp_path, {}, ["a", "b"])[0]
    assert "at 'majority' never fails over" in warnings(tmp_path, {"expected": 2}, [])[0]
    assert warnings(tmp_path, {}, ["a", "b", "c"]) == []
    assert warnings(tmp_path, {"policy": "two_node"}, ["a", "b"]) == []
    assert "is for exactly two nodes" in warnings(tmp_path, {"policy": "two_node"}, ["a", "b", "c"])[0]
    assert "without a fence device for each node" in warnings(tmp_path, {"policy": "two_node"}, [])[0]


def test_omha_check_prints_the_warning(tmp_path: Path) -> None:
    nodes = {n: n for n in ("alpha", "beta")}
    (tmp_path / "omha.toml").write_text(
        f'[sharedfs]\npath = "{tmp_path}"\n[[fencing.devices]]\nname = "pdu"\nkind = "command"\n'
        f'command = "true"\nnodes = {json.dumps(nodes).replace(":", " =")}\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "omha_core.cli", "check", "-c", str(tmp_path / "omha.toml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "warning:" in out.stderr and 'set policy = "two_node"' in out.stderr


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Any]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(fenced: bool = True) -> Cluster:
        c = Cluster(
            tmp_path,
            2,
            cltab=web_cltab(tmp_path),
            hactl="web run\n",
            devices=[fence_device(tmp_path, ["n1", "n2"])] if fenced else [],
            config={"fencing": {"action": "off"}, "quorum": {"policy": "two_node"}},
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def published(c: Cluster, node: str) -> dict[str, Any]:
    try:
        return dict(json.loads((c.shared / "nodes" / node / "status.json").read_text()))
    except (OSError, ValueError):
        return {}


def quorum_detail(c: Cluster, node: str) -> str:
    return str(published(c, node).get("view", {}).get("quorum", {}).get("detail", ""))


@pytest.mark.slow
def test_a_pair_fails_over_after_fencing(pair: Any) -> None:
    c = pair()
    c.start()
    holder = c.wait_running("web")
    other = next(n for n in c.names if n != holder)
    c.kill(holder, signal.SIGKILL)
    assert c.wait_running("web", 30, exclude=(holder,)) == other
    record = c.fence_record(holder)
    assert record["ok"] and record["by"] == other  # fenced before the takeover
    assert "quorate alone" in quorum_detail(c, other)


@pytest.mark.slow
def test_a_lone_node_started_fresh_starts_nothing(pair: Any) -> None:
    c = pair()
    c.start("n1")
    c.wait_for("n1 to publish its view", lambda: "waiting for both nodes" in quorum_detail(c, "n1"))
    seq = published(c, "n1")["seq"]
    c.wait_for("a few more cycles", lambda: published(c, "n1")["seq"] > seq + 15)  # past settle (2 s)
    assert c.running("web") == [] and not published(c, "n1")["quorum"]
    c.start("n2")  # the pair is complete: now it runs
    c.wait_running("web")


@pytest.mark.slow
def test_without_a_fence_device_a_node_alone_is_not_quorate(pair: Any) -> None:
    c = pair(fenced=False)
    c.start()
    holder = c.wait_running("web")
    other = next(n for n in c.names if n != holder)
    c.kill(holder, signal.SIGKILL)
    c.wait_for("the survivor to see itself alone", lambda: "no fence device" in quorum_detail(c, other))
    time.sleep(1.0)  # a dead_after of the test cluster more: nothing may start
    assert c.running("web") == []
    assert not any(ln.startswith("start") and other in ln for ln in c.safety_log("web"))
