"""A buggy site plugin must not take a healthy node down: real daemons, plugins installed the way pip installs
them. ``zbad`` raises in every notification hook (always) and in ``omha_node_fitness`` on the node named in a
file; ``asite`` records every notification it gets. pluggy calls the later-registered ``zbad`` first, so a
pluggy call would silence ``asite``."""

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

RECORDER = """
import json, os
from omha_core import hookimpl

def _log(**event):
    with open(os.environ["SITE_EVENTS"], "a") as fh:
        fh.write(json.dumps(event, default=str) + "\\n")

@hookimpl
def omha_node_lost(node, observer, groups):
    _log(event="lost", node=node, observer=observer)

@hookimpl
def omha_node_fenced(node, device, action, result):
    _log(event="fenced", node=node)

@hookimpl
def omha_group_moved(group, from_node, to_node, level):
    _log(event="moved", group=group, to_node=to_node)
"""

BUGGY = """
import os
from omha_core import hookimpl

@hookimpl
def omha_node_fitness(group, node):
    with open(os.environ["SITE_BREAK"]) as fh:
        if node in fh.read().split():
            raise RuntimeError("licence server unreachable")
    return None

@hookimpl
def omha_node_lost(node, observer, groups):
    raise RuntimeError("lost hook bug")

@hookimpl
def omha_node_fenced(node, device, action, result):
    raise RuntimeError("fenced hook bug")

@hookimpl
def omha_group_moved(group, from_node, to_node, level):
    raise RuntimeError("moved hook bug")
"""


def install(site: Path, name: str, source: str) -> None:
    (site / f"omhatest_{name}.py").write_text(textwrap.dedent(source))
    info = site / f"omhatest_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: omhatest-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[omha]\n{name} = omhatest_{name}\n")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_commands("flock")
    site = tmp_path / "site"
    site.mkdir()
    install(site, "asite", RECORDER)
    install(site, "zbad", BUGGY)
    (tmp_path / "break").write_text("")
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "SITE_EVENTS": str(tmp_path / "events"),
        "SITE_BREAK": str(tmp_path / "break"),
    }
    c = Cluster(
        tmp_path,
        3,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        devices=[fence_device(tmp_path, ["n1", "n2", "n3"])],
        config={"fencing": {"action": "off"}},
        env=env,
    )
    yield c
    c.close()


def events(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    path = tmp_path / "events"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_raising_fitness_is_a_veto_and_the_node_keeps_heartbeating(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start()
    holder = cluster.wait_running("web")
    # the first start was notified although zbad's omha_group_moved raised first
    cluster.wait_for("move notified to asite", lambda: events(tmp_path, "moved"))
    (tmp_path / "break").write_text(holder)
    status = cluster.shared / "nodes" / holder / "status.json"

    def vetoed() -> bool:
        return "zbad" in json.loads(status.read_text()).get("plugin_errors", {})

    cluster.wait_for(f"{holder} to publish the plugin's failure", vetoed, 20)
    seq = json.loads(status.read_text())["seq"]
    # several dead_after periods: a node that stopped heartbeating would be lost and fenced by now
    cluster.wait_for(f"{holder} to go on heartbeating", lambda: json.loads(status.read_text())["seq"] > seq + 20, 30)
    assert cluster.running("web") == [holder]
    assert not cluster.fence_record(holder)
    assert events(tmp_path, "lost") == [] and events(tmp_path, "fenced") == []
    published = json.loads(status.read_text())
    message = "plugin zbad failed: RuntimeError: licence server unreachable"
    assert published["unfit"] == {"web": message}
    assert published["plugin_errors"] == {"zbad": message}
    report = json.loads(cluster.omha("n1", "status", "--json").stdout)
    assert report["nodes"][holder]["state"] == "up" and report["nodes"][holder]["plugin_errors"] == [message]
    assert message in cluster.omha("n1", "status").stdout
    assert f"web: omha_node_fitness {message}; counted as a veto of this node" in cluster.log(holder)

    # a real loss now: the survivors' recorder hears of it and of the fence although zbad raises before it
    cluster.kill(holder, signal.SIGSTOP)
    cluster.wait_running("web", 30, exclude=(holder,))
    cluster.wait_for("fence notified to asite", lambda: events(tmp_path, "fenced"), 30)
    assert {e["observer"] for e in events(tmp_path, "lost")} == set(cluster.names) - {holder}
    assert "plugin zbad: omha_node_lost failed: RuntimeError: lost hook bug" in "".join(
        cluster.log(n) for n in cluster.names
    )
