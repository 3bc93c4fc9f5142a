"""A daemon started while etcd does not answer waits for it instead of exiting (found by the fault campaign).

Campaign run 4004 powered a node on while one etcd member was down and the others did not answer in time: its
daemon exited with status 1 ("etcd unreachable"), a crash where a wait was due. Nothing runs on a node before its
daemon has joined, so waiting is safe; a supervisor restarting a daemon in a loop is not what an operator wants
to see on a busy etcd. A wrong configuration (no such key prefix permission, a duplicate node) still stops it.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.etcd import EtcdCluster, EtcdLocalCluster

pytestmark = pytest.mark.slow


def stderr(c: EtcdLocalCluster) -> str:
    path = c.tmp / "n1" / "stderr.log"
    return path.read_text() if path.exists() else ""


def test_a_daemon_started_before_etcd_waits_for_it_and_joins(tmp_path: Path) -> None:
    require_commands("etcd", "etcdctl")
    etcd = EtcdCluster(1)
    etcd._plan()  # ports chosen, nothing listens on them yet
    c = EtcdLocalCluster(tmp_path, etcd, nodes=["n1"], config={"quorum": {"policy": "ignore"}})
    try:
        c.start("n1")
        time.sleep(3.0)  # the store's timeout is 1 s: long enough to have given up, before the fix
        assert c.procs["n1"].poll() is None, f"the daemon exited while etcd was down:\n{c.log('n1')}{stderr(c)}"
        assert "waiting for the store" in c.log("n1"), c.log("n1")
        for member in etcd.members:  # on the ports planned above (etcd.start() would choose new ones)
            member.start(etcd.initial_cluster, etcd.token)
        etcd.wait_ready()
        c.wait_for("n1 up in etcd", lambda: c.report()["nodes"].get("n1", {}).get("state") == "up", 30)
    finally:
        c.close()
        etcd.stop()


def test_a_daemon_waiting_for_etcd_stops_on_sigterm(tmp_path: Path) -> None:
    require_commands("etcd", "etcdctl")
    etcd = EtcdCluster(1)
    etcd._plan()
    c = EtcdLocalCluster(tmp_path, etcd, nodes=["n1"], config={"quorum": {"policy": "ignore"}})
    try:
        c.start("n1")
        c.wait_for("the daemon waiting for etcd", lambda: "waiting for the store" in c.log("n1"), 20)
        c.procs["n1"].send_signal(signal.SIGTERM)  # nothing runs yet: SIGTERM's default action is a clean stop
        c.procs["n1"].wait(10)
    finally:
        c.stop()
        etcd.stop()
