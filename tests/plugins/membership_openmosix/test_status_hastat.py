"""Each node's ``clstat`` on MFS, read tolerantly, and the consolidated ``hastat`` written for monitoring."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from omha_membership_openmosix.hastat import Silence
from omha_membership_openmosix.store import OpenMosixStore

from omha_core.errors import StoreError
from tests.plugins.membership_openmosix.mfs_fixture import FakeMosix


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def store(mosix: FakeMosix, node: int, **overrides: Any) -> OpenMosixStore:
    s = OpenMosixStore(mosix.config(node, **overrides))
    s.open()
    return s


def status(node: str, seq: int, groups: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"node": node, "incarnation": f"inc{node}", "seq": seq, "groups": groups or {}}


def test_each_node_publishes_into_its_own_directory(mosix: FakeMosix) -> None:
    s1, s2 = store(mosix, 1), store(mosix, 2)
    s1.publish("1", status("1", 1))
    s2.publish("2", status("2", 7))
    assert mosix.read_json(1, "clstat")["seq"] == 1
    assert mosix.read_json(2, "clstat")["seq"] == 7
    got = s1.statuses()
    assert {n: d["seq"] for n, d in got.items() if not isinstance(d, Exception)} == {"1": 1, "2": 7}
    assert not [f for f in os.listdir(mosix.node_dir(1)) if f.startswith(".tmp.")]
    s1.forget("2")
    assert "2" not in s1.statuses()


def test_garbage_statuses_become_errors_not_crashes(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    s1.publish("1", status("1", 1))
    (mosix.node_dir(2) / "clstat").write_text("{half a docu")
    (mosix.node_dir(3) / "clstat").write_text("[1, 2]")
    got = s1.statuses()
    assert isinstance(got["2"], StoreError) and "status is not valid JSON" in str(got["2"])
    assert isinstance(got["3"], StoreError) and "not a JSON object" in str(got["3"])
    view = mosix.read_json(1, "hastat")
    assert "not valid JSON" in view["nodes"]["2"]["error"]


def test_a_down_nodes_last_status_stays_readable_while_its_directory_is(mosix: FakeMosix) -> None:
    s1, s3 = store(mosix, 1), store(mosix, 3)
    s1.publish("1", status("1", 1))
    s3.publish("3", status("3", 5, {"db": {"level": "start", "state": "DONE"}}))
    mosix.down(3)
    last = s1.statuses()["3"]
    assert not isinstance(last, Exception) and last["seq"] == 5  # the core still knows what node 3 held
    assert mosix.read_json(1, "hastat")["groups"] == {}  # but it is no longer "running" anywhere
    mosix.disconnect(3)  # as on real MFS: a down node's directory is unreachable
    assert "3" not in s1.statuses()


def test_publish_refuses_a_node_name_that_is_not_a_number(mosix: FakeMosix) -> None:
    from omha_core.errors import ConfigError

    with pytest.raises(ConfigError, match="named by its openMosix node number"):
        store(mosix, 1).publish("web1", status("web1", 1))


def test_hastat_is_the_consolidated_view_of_the_up_nodes(mosix: FakeMosix) -> None:
    mosix.add_node(4)
    s1 = store(mosix, 1)
    s1.publish("1", status("1", 1, {"web": {"level": "start", "state": "DONE", "pid": 7}}))
    store(mosix, 2).publish(
        "2",
        status(
            "2",
            3,
            {
                "db": {"level": "test", "state": "PASSED"},
                "old": {"level": "stop", "state": "DONE"},  # stopped: not active
                "idle": {"level": None, "state": "CONFIGURED"},  # never started: not active
                "bad": "garbage",
            },
        ),
    )
    store(mosix, 3).publish("3", status("3", 9, {"web": {"level": "plan", "state": "STARTING"}}))
    mosix.down(3)
    returned = s1.statuses()
    view = mosix.read_json(1, "hastat")
    assert view["node"] == "1"
    assert view["up"] == ["1", "2", "4"]
    assert view["groups"] == {
        "db": {"2": {"level": "test", "state": "PASSED"}},
        "web": {"1": {"level": "start", "state": "DONE"}},
    }
    assert view["nodes"]["3"]["up"] is False and view["nodes"]["3"]["seq"] == 9
    assert view["nodes"]["4"] == {"up": True, "error": "publishes no status", "silent": 0.0, "stale": False}
    assert view["stale"] == []
    assert isinstance(returned["2"], dict)


def test_hastat_flags_up_nodes_whose_status_stops_changing_for_timeout(mosix: FakeMosix) -> None:
    clock = Clock()
    s1, s2, s3 = store(mosix, 1, timeout=30), store(mosix, 2), store(mosix, 3)
    s1.silence = Silence(clock)
    for seq in range(1, 4):
        s1.publish("1", status("1", seq))
        s2.publish("2", status("2", seq))
        if seq == 1:
            s3.publish("3", status("3", 1))  # node 3's daemon publishes once, then hangs
        s1.statuses()
        clock.now += 10
    view = json.loads((mosix.node_dir(1) / "hastat").read_text())
    assert view["nodes"]["3"]["silent"] == 20.0 and view["stale"] == []
    clock.now += 10
    s1.publish("1", status("1", 4))
    s2.publish("2", status("2", 4))
    s1.statuses()
    view = mosix.read_json(1, "hastat")
    assert view["timeout"] == 30.0
    assert view["stale"] == ["3"]
    assert view["nodes"]["2"]["silent"] == 0.0
    s3.publish("3", status("3", 2))  # it recovers
    s1.statuses()
    assert mosix.read_json(1, "hastat")["stale"] == []


def test_only_the_nodes_daemon_writes_hastat(mosix: FakeMosix) -> None:
    cli = store(mosix, 1)  # e.g. `omha status`: reads, never publishes
    cli.statuses()
    assert not (mosix.node_dir(1) / "hastat").exists()
    daemon = store(mosix, 1)
    daemon.publish("1", status("1", 1))
    daemon.statuses()
    assert mosix.read_json(1, "hastat")["nodes"]["1"]["seq"] == 1
    before = (mosix.node_dir(1) / "hastat").read_text()
    cli.statuses()
    assert (mosix.node_dir(1) / "hastat").read_text() == before


def test_hastat_is_replaced_atomically(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    s1.publish("1", status("1", 1))
    s1.statuses()
    before = os.stat(mosix.node_dir(1) / "hastat").st_ino
    s1.statuses()
    assert os.stat(mosix.node_dir(1) / "hastat").st_ino != before  # a new file renamed over the old one
    assert not [f for f in os.listdir(mosix.node_dir(1)) if f.startswith(".tmp.")]


def test_open_without_mfs_says_so(mosix: FakeMosix) -> None:
    s = OpenMosixStore(mosix.config(1, mfsbase=str(mosix.root / "no-mfs")))
    with pytest.raises(StoreError, match=r"no-mfs: not a directory \(is MFS mounted"):
        s.open()
