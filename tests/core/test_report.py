"""The status report and ``omha show`` read the store without a daemon: what they must not get wrong.

A report built from the store alone can mislead in two ways the tests below pin: showing a dead daemon's last
view as if it were current, and showing a newer document than the one the daemons actually run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.cli_cluster import tell
from omha_core.config import validate_config
from omha_core.report import cluster_report, format_report


def store(path: Path) -> SharedDirStore:
    s = SharedDirStore(validate_config({"node": "n1", "sharedfs": {"path": str(path)}}))
    s.open()
    return s


def status(node: str, age: float, hactl: str | None, entries: dict[str, Any] | None = None) -> dict[str, Any]:
    """A status as a daemon publishes it, written ``age`` seconds ago, whose view says every node is up."""
    return {
        "node": node,
        "incarnation": "i1",
        "seq": 7,
        "time": time.time() - age,
        "groups": {"web": {"level": "run", "state": "DONE", "since": 1.0, "entries": entries or {}}},
        "config": {"cltab": "c-version", "hactl": hactl, "errors": []},
        "view": {
            "nodes": {node: {"state": "up", "silent": 0.0}, "n2": {"state": "up", "silent": 0.1}},
            "quorum": {"have": True, "member": True, "detail": "2 of 2 expected nodes"},
            "why": {},
        },
    }


def test_a_dead_observer_view_is_shown_unknown_not_up(tmp_path: Path) -> None:
    s = store(tmp_path)
    tell(s, "web", "run")
    s.publish("n1", status("n1", age=30.0, hactl=None))
    rep = cluster_report(s, "c", dead_after=2.0)
    assert rep["stale"] is not None and rep["stale"] >= 29
    assert {n["state"] for n in rep["nodes"].values()} == {"unknown"}
    assert rep["quorum"]["have"] is None and "newest status, n1's, is" in rep["quorum"]["detail"]
    assert rep["groups"]["web"]["running_on"] == []
    assert "quorum UNKNOWN" in format_report(rep) and "environment marker" not in format_report(rep)
    s.publish("n1", {**status("n1", age=0.0, hactl=None), "containment": "environment marker"})  # fresh: believed
    fresh = cluster_report(s, "c", dead_after=2.0)
    assert fresh["stale"] is None and fresh["nodes"]["n1"]["state"] == "up"
    assert fresh["groups"]["web"]["running_on"] == ["n1"] and "quorum yes" in format_report(fresh)
    assert "no cgroup v2: descendants are tracked by environment marker only" in format_report(fresh)


def test_report_wants_what_the_daemons_adopted_and_shows_entries(tmp_path: Path) -> None:
    s = store(tmp_path)
    adopted = tell(s, "web", "run")
    s.adopt("hactl", s.documents("hactl")[0])  # as n1's daemon does: it keeps a copy of what it runs
    tell(s, "web", "stop")  # newer, valid, not adopted yet by the (only) daemon
    entries = {"srv": {"pid": 4242, "state": "running"}}
    s.publish("n1", status("n1", age=0.0, hactl=adopted, entries=entries))
    rep = cluster_report(s, "c")
    assert rep["config"] == {"cltab": "c-version", "hactl": adopted, "errors": []}
    assert rep["groups"]["web"]["want"] == "run" and rep["groups"]["web"]["running_on"] == ["n1"]
    assert rep["groups"]["web"]["instances"]["n1"]["entries"] == entries
    (tmp_path / "nodes" / "n1" / "hactl").unlink()
    assert cluster_report(s, "c")["groups"]["web"]["want"] == "stop"  # adopted version gone: the newest valid


def test_show_prints_the_version_the_daemons_run(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    config = tmp_path / "omha.toml"
    config.write_text(f'node = "n1"\n[sharedfs]\npath = "{shared}"\n')
    s = store(shared)
    adopted = tell(s, "web", "run")
    s.adopt("hactl", s.documents("hactl")[0])
    newer = tell(s, "web", "stop")

    def show() -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "omha_core.cli", "show", "-c", str(config), "hactl"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)

    out = show()  # no daemon has adopted anything: the newest valid version
    assert out.stdout == "web stop\n" and "not adopted by any daemon yet" in out.stderr
    s.publish("n1", status("n1", age=0.0, hactl=adopted))
    out = show()
    assert out.stdout == "web run\n"
    assert f"version {adopted}" in out.stderr and "the version n1 runs" in out.stderr
    assert f"a newer valid version {newer} is in the store, not adopted yet" in out.stderr
    assert json.loads((shared / "nodes" / "n1" / "status.json").read_text())["config"]["hactl"] == adopted


def test_a_dead_node_whose_clock_runs_ahead_is_not_taken_for_the_freshest(tmp_path: Path) -> None:
    s = store(tmp_path)
    tell(s, "web", "run")
    s.publish("n1", status("n1", age=-3600.0, hactl=None))  # died long ago, but stamped an hour ahead
    s.publish("n2", {**status("n2", age=0.0, hactl=None), "view": {"nodes": {"n1": {"state": "lost"}}}})
    rep = cluster_report(s, "c", dead_after=2.0)
    assert rep["observer"] == "n2" and rep["nodes"]["n1"]["state"] == "lost"
