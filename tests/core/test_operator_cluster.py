"""The operator commands with real daemons: ``omha move``/``unmove``, ``standby``/``unstandby``, ``cleanup``,
``tell --wait`` and ``status --check``, each ``--json`` output checked against its schema, and every group's
run-level command guarded by the safety checker (two nodes never run it at once)."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded, web_cltab

from omha_core.ranking import rank_key
from tests.core.json_schemas import validated

pytestmark = pytest.mark.slow

#: a stall of a daemon on this loaded machine must not look like a lost node: the tests assert where groups go
STEADY = {"timing": {"dead_after": 2.5}}


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[Any]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(**kw: Any) -> Cluster:
        c = Cluster(tmp_path, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def status(c: Cluster, node: str = "n1") -> dict[str, Any]:
    return validated(c.omha(node, "status", "--json").stdout, "omha.status/1")


def starts(c: Cluster, group: str) -> list[str]:
    return [line.split()[1] for line in c.safety_log(group) if line.startswith("start")]


def test_move_stops_the_group_then_starts_it_on_the_target_and_the_preference_lasts(
    make_cluster: Any, tmp_path: Path
) -> None:
    c = make_cluster(nodes=3, cltab=web_cltab(tmp_path), hactl="web run\n", config=STEADY)
    c.start()
    holder = c.wait_running("web")
    # a target the usual ranking would not pick, so that "it goes back there" proves the preference
    best = min(c.names, key=lambda n: rank_key("web", n, 0))
    target = next(n for n in c.names if n not in (holder, best))
    doc = validated(c.omha(holder, "move", "web", target, "--json").stdout, "omha.move/1")
    assert (doc["group"], doc["node"], doc["previous"]) == ("web", target, None)
    assert c.wait_running("web", exclude=(holder,)) == target
    assert starts(c, "web") == [holder, target]
    rep = status(c)
    assert rep["groups"]["web"]["prefer"] == target and rep["operator"]["prefer"] == {"web": target}
    assert f"prefers {target}" in c.omha("n1", "status").stdout

    # lasting: stopped everywhere and wanted again, it starts on the target
    doc = validated(c.omha("n1", "tell", "web", "stop", "--wait", "--timeout", "30", "--json").stdout, "omha.tell/1")
    assert doc["wait"] == {"reached": True, "reason": None, "message": "reached", "nodes": []}
    doc = validated(c.omha("n1", "tell", "web", "run", "--wait", "--timeout", "30", "--json").stdout, "omha.tell/1")
    assert doc["wait"]["reached"] and doc["wait"]["nodes"] == [target]
    assert starts(c, "web") == [holder, target, target]

    # unmove clears the preference and leaves the group where it runs
    doc = validated(c.omha("n1", "unmove", "web", "--json").stdout, "omha.move/1")
    assert (doc["node"], doc["previous"]) == (None, target)
    assert status(c)["groups"]["web"]["prefer"] is None
    assert c.running("web") == [target]
    assert "prefers" not in c.omha("n1", "status").stdout


def test_standby_nodes_stop_their_groups_and_are_given_none(make_cluster: Any, tmp_path: Path) -> None:
    c = make_cluster(nodes=3, cltab=web_cltab(tmp_path), hactl="web run\n", config=STEADY)
    c.start()
    first = c.wait_running("web")
    assert c.omha("n1", "status", "--check", check=False).returncode == 0
    doc = validated(c.omha("n1", "standby", first, "--json").stdout, "omha.standby/1")
    assert doc["standby"] and not doc["was_standby"] and doc["standby_nodes"] == [first]
    second = c.wait_running("web", exclude=(first,))
    rep = status(c)
    assert rep["nodes"][first]["standby"] and not rep["nodes"][second]["standby"]
    assert "standby" in c.omha("n1", "status").stdout
    out = c.omha("n1", "status", "--check", check=False)
    assert out.returncode == 1 and out.stdout.startswith("OMHA WARNING - ") and f"node {first} in standby" in out.stdout

    validated(c.omha("n1", "standby", second, "--json").stdout, "omha.standby/1")
    third = c.wait_running("web", exclude=(first, second))
    # every node in standby: nothing may run it, and tell --wait says so
    c.omha("n1", "standby", third)
    c.wait_for("web stopped", lambda: not status(c)["groups"]["web"]["instances"])
    out = c.omha("n1", "tell", "web", "run", "--wait", "--timeout", "30", "--json", check=False)
    assert out.returncode == 1
    wait = validated(out.stdout, "omha.tell/1")["wait"]
    assert wait["reason"] == "unfit" and "in standby" in wait["message"]
    assert c.omha("n1", "status", "--check", check=False).returncode == 2

    doc = validated(c.omha("n1", "unstandby", second, "--json").stdout, "omha.standby/1")
    assert not doc["standby"] and doc["was_standby"] and doc["standby_nodes"] == sorted([first, third])
    assert c.wait_running("web") == second
    for node in (first, third):
        c.omha("n1", "unstandby", node)
    c.wait_for("status OK", lambda: c.omha("n1", "status", "--check", check=False).returncode == 0)
    assert starts(c, "web") == [first, second, third, second]


def test_cleanup_makes_a_node_whose_test_failed_a_candidate_again_now(make_cluster: Any, tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    cltab = f"db:fit:test:test:test -e {ok}\ndb:srv:run:respawn:{guarded(tmp_path, 'db')}\n"
    # failures are remembered for ten minutes: only the cleanup can make a node try again within the test
    c = make_cluster(nodes=3, cltab=cltab, config={"timing": {"failed_retry": 600, "dead_after": 2.5}})
    c.start()
    c.wait_for(
        "every node up",
        lambda: all(v["state"] == "up" for v in status(c)["nodes"].values()) and len(status(c)["nodes"]) == 3,
    )
    out = c.omha("n1", "tell", "db", "run", "--wait", "--timeout", "60", "--json", check=False)
    assert out.returncode == 1, out
    wait = validated(out.stdout, "omha.tell/1")["wait"]
    assert wait["reason"] == "unfit" and "test FAILED on" in wait["message"]
    out = c.omha("n1", "status", "--check", check=False)
    assert out.returncode == 2 and "db running nowhere" in out.stdout

    # moved to n3, where its test failed: it cannot go there, and status says why
    c.omha("n1", "move", "db", "n3")
    assert status(c)["groups"]["db"]["prefer_why"] == "test FAILED on n3 (omha cleanup db n3 to retry now)"
    ok.write_text("")
    doc = validated(c.omha("n1", "cleanup", "db", "n2", "--json").stdout, "omha.cleanup/1")
    assert doc["group"] == "db" and doc["node"] == "n2" and doc["request"]
    doc = validated(c.omha("n1", "tell", "db", "run", "--wait", "--timeout", "30", "--json").stdout, "omha.tell/1")
    assert doc["wait"]["reached"] and doc["wait"]["nodes"] == ["n2"]
    assert "prefers n3; test FAILED on n3" in c.omha("n1", "status").stdout
    # cleaned up on n3 too, the group goes where it was moved: stopped on n2 first, then started on n3
    c.omha("n1", "cleanup", "db", "n3")
    assert c.wait_running("db", exclude=("n2",)) == "n3"
    assert starts(c, "db") == ["n2", "n3"]
    assert status(c)["groups"]["db"]["prefer_why"] is None
    assert status(c)["groups"]["db"]["running_on"] == ["n3"]
    assert "OMHA OK" in c.omha("n1", "status", "--check").stdout


def test_tell_wait_without_quorum_says_so(make_cluster: Any, tmp_path: Path) -> None:
    c = make_cluster(nodes=3, cltab=web_cltab(tmp_path))
    c.start()
    c.wait_for("every node up", lambda: len([v for v in status(c)["nodes"].values() if v["state"] == "up"]) == 3)
    doc = validated(c.omha("n2", "shutdown", "--wait", "--json").stdout, "omha.shutdown/1")
    assert doc == {"schema": "omha.shutdown/1", "node": "n2", "requested": True, "stopped": True}
    c.procs["n2"].wait(timeout=30)
    c.kill("n3", signal.SIGTERM)
    c.wait_for("quorum lost", lambda: status(c)["quorum"]["have"] is False)
    out = c.omha("n1", "tell", "web", "run", "--wait", "--timeout", "30", "--json", check=False)
    assert out.returncode == 1
    wait = validated(out.stdout, "omha.tell/1")["wait"]
    assert wait["reason"] == "no-quorum", wait
    out = c.omha("n1", "status", "--check", check=False)
    assert out.returncode == 2 and "no quorum" in out.stdout


def test_cleanup_retries_a_failed_stop_and_the_group_moves_on(make_cluster: Any, tmp_path: Path) -> None:
    held = tmp_path / "held"
    held.mkdir()
    marker = held / "marker"
    c = make_cluster(nodes=2, cltab=f"data:res:run:once:@file {marker}\n", hactl="data run\n", config=STEADY)
    c.start()
    first = c.wait_running("data")
    other = next(n for n in c.names if n != first)
    c.wait_for("the resource to be acquired", marker.exists)
    marker.unlink()
    marker.mkdir()  # unlink() of a directory fails: the release cannot succeed
    c.omha("n1", "standby", first)

    def why_on_first() -> str:
        doc = json.loads((c.shared / "nodes" / first / "status.json").read_text())
        return str(doc["view"]["why"].get("data") or "")

    c.wait_for("the stop to fail", lambda: "stop FAILED" in why_on_first())
    # the claim is kept: the group must not start elsewhere while its resource may still be held
    assert c.running("data") == [] and "omha cleanup" in why_on_first()
    # status shows the instance whose stop FAILED (it may hold its resources), and the check is CRITICAL
    assert status(c)["groups"]["data"]["instances"][first]["state"] == "FAILED"
    out = c.omha("n1", "status", "--check", check=False)
    assert out.returncode == 2 and f"data FAILED on {first}" in out.stdout
    marker.rmdir()
    validated(c.omha("n1", "cleanup", "data", first, "--json").stdout, "omha.cleanup/1")
    assert c.wait_running("data") == other
