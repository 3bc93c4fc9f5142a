"""Each node's ``clstat`` on MFS, read tolerantly, and the consolidated ``hastat`` its daemon writes for monitoring
when it publishes: built from the statuses it read and its own judgement of them (the ``view`` it publishes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from omha_membership_openmosix.hastat import Silence
from omha_membership_openmosix.store import OpenMosixStore
from omha_testing.mosix import FakeMosix

from omha_core.errors import StoreError


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


def status(
    node: str, seq: int, groups: dict[str, Any] | None = None, view: dict[str, str] | None = None
) -> dict[str, Any]:
    """A status document; ``view`` (node -> state) is the publishing daemon's judgement of the other nodes."""
    doc: dict[str, Any] = {"node": node, "incarnation": f"inc{node}", "seq": seq, "groups": groups or {}}
    if view is not None:
        doc["view"] = {
            "nodes": {n: {"state": st, "silent": 0.0} for n, st in view.items()},
            "quorum": {"have": True, "member": True, "detail": "2 of 3 expected nodes (majority)"},
        }
    return doc


def cycle(s: OpenMosixStore, seq: int, groups: dict[str, Any] | None = None, view: dict[str, str] | None = None) -> Any:
    """One daemon cycle on store ``s``: read every status, then publish this node's; return the hastat written."""
    s.statuses()
    s.publish(s.me, status(s.me, seq, groups, view))
    return json.loads((Path(s.layout.node_dir(s.me)) / "hastat").read_text())


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
    view = cycle(s1, 2)
    assert "not valid JSON" in view["nodes"]["2"]["error"]
    assert view["alive"] == ["1"] and view["lost"] == ["2", "3"]


def test_a_down_nodes_last_status_stays_readable_while_its_directory_is(mosix: FakeMosix) -> None:
    s1, s3 = store(mosix, 1), store(mosix, 3)
    s1.publish("1", status("1", 1))
    s3.publish("3", status("3", 5, {"db": {"level": "start", "state": "DONE"}}))
    mosix.down(3)
    last = s1.statuses()["3"]
    assert not isinstance(last, Exception) and last["seq"] == 5  # the core still knows what node 3 held
    view = cycle(s1, 2)
    assert view["groups"] == {}  # but it is no longer "running" anywhere: its last word is marked as such
    assert view["lost_groups"] == {"db": {"3": {"level": "start", "state": "DONE", "node_state": "down"}}}
    mosix.disconnect(3)  # as on real MFS: a down node's directory is unreachable
    assert "3" not in s1.statuses()


def test_publish_refuses_a_node_name_that_is_not_a_number(mosix: FakeMosix) -> None:
    from omha_core.errors import ConfigError

    with pytest.raises(ConfigError, match="named by its openMosix node number"):
        store(mosix, 1).publish("web1", status("web1", 1))


def test_hastat_is_the_consolidated_view_of_the_up_nodes(mosix: FakeMosix) -> None:
    mosix.add_node(4)
    s1 = store(mosix, 1)
    s1.silence = Silence(Clock())
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
    # no view yet (a daemon's first cycle): the kernel and the statuses decide who is alive
    view = cycle(s1, 1, {"web": {"level": "start", "state": "DONE", "pid": 7}})
    assert view["node"] == "1"
    assert view["up"] == ["1", "2", "4"]
    assert view["groups"] == {
        "db": {"2": {"level": "test", "state": "PASSED"}},
        "web": {"1": {"level": "start", "state": "DONE"}},
    }
    assert view["lost_groups"] == {"web": {"3": {"level": "plan", "state": "STARTING", "node_state": "down"}}}
    assert view["nodes"]["3"]["up"] is False and view["nodes"]["3"]["seq"] == 9
    assert view["nodes"]["4"] == {
        "up": True,
        "error": "publishes no status",
        "silent": 0.0,
        "stale": False,
        "state": "lost",
        "alive": False,
    }
    assert view["alive"] == ["1", "2"] and view["lost"] == ["3", "4"]
    assert view["stale"] == [] and view["quorum"] is None


def test_hastat_lists_as_running_only_the_groups_of_nodes_the_daemon_counts_alive(mosix: FakeMosix) -> None:
    """Node 3 is up in the kernel, but node 1's daemon judged it lost (its daemon stopped heartbeating) and
    took it over unfenced: node 3's last word (db running) is listed under lost_groups, not groups."""
    s1 = store(mosix, 1)
    store(mosix, 2).publish("2", status("2", 4, {"web": {"level": "start", "state": "DONE"}}))
    store(mosix, 3).publish("3", status("3", 8, {"db": {"level": "start", "state": "DONE"}}))
    view = cycle(s1, 5, {"db": {"level": "plan", "state": "STARTING"}}, {"1": "up", "2": "up", "3": "unfenced"})
    assert view["up"] == ["1", "2", "3"]  # the kernel's view: the original counted node 3
    assert view["alive"] == ["1", "2"] and view["lost"] == ["3"]
    assert view["nodes"]["3"]["state"] == "unfenced" and view["nodes"]["3"]["alive"] is False
    assert view["groups"] == {
        "db": {"1": {"level": "plan", "state": "STARTING"}},
        "web": {"2": {"level": "start", "state": "DONE"}},
    }
    assert view["lost_groups"] == {"db": {"3": {"level": "start", "state": "DONE", "node_state": "unfenced"}}}
    assert view["quorum"]["detail"] == "2 of 3 expected nodes (majority)"

    # the daemon counts node 3 again once it heartbeats: its groups are listed as running again
    store(mosix, 3).publish("3", status("3", 9, {"db": {"level": "start", "state": "DONE"}}))
    view = cycle(s1, 6, {}, {"1": "up", "2": "up", "3": "up"})
    assert view["alive"] == ["1", "2", "3"] and view["lost_groups"] == {}
    assert view["groups"]["db"] == {"3": {"level": "start", "state": "DONE"}}


def test_hastat_flags_up_nodes_whose_status_stops_changing_for_timeout(mosix: FakeMosix) -> None:
    """``[openmosix] timeout`` marks a node stale and its groups lost even where the daemon, whose
    ``dead_after`` may be longer, still judges it up."""
    clock = Clock()
    s1, s2, s3 = store(mosix, 1, timeout=30), store(mosix, 2), store(mosix, 3)
    s1.silence = Silence(clock)
    judged = {"1": "up", "2": "up", "3": "up"}
    s3.publish("3", status("3", 1, {"db": {"level": "start", "state": "DONE"}}))  # publishes once, then hangs
    for seq in range(1, 4):
        s2.publish("2", status("2", seq))
        view = cycle(s1, seq, view=judged)
        clock.now += 10
    assert view["nodes"]["3"]["silent"] == 20.0 and view["stale"] == []
    assert view["groups"] == {"db": {"3": {"level": "start", "state": "DONE"}}}
    s2.publish("2", status("2", 4))
    view = cycle(s1, 4, view=judged)
    assert view["timeout"] == 30.0
    assert view["stale"] == ["3"] and view["lost"] == ["3"]
    assert view["nodes"]["3"]["state"] == "up" and view["nodes"]["3"]["alive"] is False
    assert view["nodes"]["2"]["silent"] == 0.0
    assert view["groups"] == {}
    assert view["lost_groups"] == {"db": {"3": {"level": "start", "state": "DONE", "node_state": "up"}}}
    view = cycle(s1, 5)  # without the daemon's judgement, the stale node's state says why it is not alive
    assert view["nodes"]["3"]["state"] == "stale"
    s3.publish("3", status("3", 2, {"db": {"level": "start", "state": "DONE"}}))  # it recovers
    view = cycle(s1, 6, view=judged)
    assert view["stale"] == [] and view["alive"] == ["1", "2", "3"]
    assert view["groups"] == {"db": {"3": {"level": "start", "state": "DONE"}}}


def test_only_the_nodes_daemon_writes_hastat(mosix: FakeMosix) -> None:
    cli = store(mosix, 1)  # e.g. `omha status`: reads, never publishes
    cli.statuses()
    assert not (mosix.node_dir(1) / "hastat").exists()
    daemon = store(mosix, 1)
    assert cycle(daemon, 1)["nodes"]["1"]["seq"] == 1
    before = (mosix.node_dir(1) / "hastat").read_text()
    cli.statuses()
    daemon.statuses()  # reading alone never rewrites it: publishing this node's status does
    assert (mosix.node_dir(1) / "hastat").read_text() == before
    daemon.publish("2", status("2", 1))  # nor publishing for another node (the core's tests do that)
    assert (mosix.node_dir(1) / "hastat").read_text() == before


def test_hastat_is_replaced_atomically(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    cycle(s1, 1)
    before = os.stat(mosix.node_dir(1) / "hastat").st_ino
    cycle(s1, 2)
    assert os.stat(mosix.node_dir(1) / "hastat").st_ino != before  # a new file renamed over the old one
    assert not [f for f in os.listdir(mosix.node_dir(1)) if f.startswith(".tmp.")]


def test_open_without_mfs_says_so(mosix: FakeMosix) -> None:
    s = OpenMosixStore(mosix.config(1, mfsbase=str(mosix.root / "no-mfs")))
    with pytest.raises(StoreError, match=r"no-mfs: not a directory \(is MFS mounted"):
        s.open()
