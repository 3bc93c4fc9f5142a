"""Notification and fitness hooks, called by real daemons from a plugin installed the way pip installs one
(a module plus a dist-info with an ``omha`` entry point, on the daemons' PYTHONPATH)."""

from __future__ import annotations

import json
import os
import signal
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow

PLUGIN = """
import json, os
from omha_core import hookimpl

def _log(**event):
    with open(os.environ["SITE_EVENTS"], "a") as fh:
        fh.write(json.dumps(event, default=str) + "\\n")

@hookimpl
def omha_node_lost(node, observer, groups):
    _log(event="lost", node=node, observer=observer, groups=groups)

@hookimpl
def omha_node_fenced(node, device, action, result):
    _log(event="fenced", node=node, device=device, action=action, verified=result.verified)

@hookimpl
def omha_fence_failed(node, errors):
    _log(event="fence_failed", node=node, errors=errors)

@hookimpl
def omha_group_moved(group, from_node, to_node, level):
    _log(event="moved", group=group, from_node=from_node, to_node=to_node, level=level)

@hookimpl
def omha_node_fitness(group, node):
    if node in os.environ.get("SITE_UNFIT", "").split(","):
        return "in maintenance"
    return None
"""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "omhatest_site.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "omhatest_site-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: omhatest-site\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[omha]\nsite = omhatest_site\n")
    return site


@pytest.fixture
def cluster(tmp_path: Path, site: Path) -> Iterator[Any]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(devices: list[dict[str, Any]], unfit: str = "", fencing: dict[str, Any] | None = None) -> Cluster:
        env = {
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "SITE_EVENTS": str(tmp_path / "events"),
            "SITE_UNFIT": unfit,
        }
        c = Cluster(
            tmp_path,
            3,
            cltab=web_cltab(tmp_path),
            hactl="web run\n",
            devices=devices,
            config={"fencing": fencing or {"action": "off"}},
            env=env,
        )
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    path = tmp_path / "events"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_lost_fenced_and_moved_are_notified(cluster: Any, tmp_path: Path) -> None:
    c = cluster([fence_device(tmp_path, ["n1", "n2", "n3"])])
    c.start()
    first = c.wait_running("web")
    c.wait_for("first start notified", lambda: events(tmp_path, "moved"))
    assert events(tmp_path, "moved")[0] == {
        "event": "moved",
        "group": "web",
        "from_node": None,
        "to_node": first,
        "level": "run",
    }
    c.kill(first, signal.SIGSTOP)
    second = c.wait_running("web", 30, exclude=(first,))
    c.wait_for("move notified", lambda: len(events(tmp_path, "moved")) == 2)
    assert events(tmp_path, "moved")[1]["from_node"] == first and events(tmp_path, "moved")[1]["to_node"] == second
    lost = events(tmp_path, "lost")
    assert {e["observer"] for e in lost} == set(c.names) - {first}  # every survivor noticed, once each
    assert all(e["node"] == first and e["groups"] == ["web"] for e in lost) and len(lost) == 2
    fenced = events(tmp_path, "fenced")
    # the local fence device reads the node back (status_command): the fence is verified
    assert fenced == [{"event": "fenced", "node": first, "device": "localkill", "action": "off", "verified": True}]


def test_fence_failure_is_notified(cluster: Any, tmp_path: Path) -> None:
    broken = {
        "name": "dead",
        "kind": "command",
        "command": "echo no route >&2; exit 1",
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    c = cluster([broken], fencing={"retry_max": 1.0})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)
    c.wait_for("fence failure notified", lambda: events(tmp_path, "fence_failed"), 30)
    failure = events(tmp_path, "fence_failed")[0]
    assert failure["node"] == victim and failure["errors"][0].startswith(
        "dead (command): dead: reboot 1: exit 1: no route"
    )


def test_fitness_veto_keeps_group_off_a_node_and_says_which_plugin(cluster: Any, tmp_path: Path) -> None:
    c = cluster([], unfit="n1,n2")
    c.start()
    assert c.wait_running("web") == "n3"
    status = json.loads((c.shared / "nodes" / "n1" / "status.json").read_text())
    assert status["unfit"] == {"web": "in maintenance (site)"}
