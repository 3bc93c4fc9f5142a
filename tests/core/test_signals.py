"""SIGHUP and SIGQUIT sent to real daemons: neither may take the groups down ungracefully (both used to kill the
daemon, and its guard then killed every group). SIGHUP re-reads cltab and hactl, SIGQUIT stops like SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded, web_cltab

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_commands("flock")
    c = Cluster(
        tmp_path,
        2,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        devices=[fence_device(tmp_path, ["n1", "n2"])],
        config={"fencing": {"action": "off"}, "quorum": {"policy": "ignore"}},
    )
    yield c
    c.close()


def starts(c: Cluster, group: str) -> list[str]:
    return [ln.split()[1] for ln in c.safety_log(group) if ln.startswith("start")]


def test_sighup_rereads_cltab_and_hactl_and_stops_nothing(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start()
    holder = cluster.wait_running("web")
    cltab = web_cltab(tmp_path) + f"db:dbsrv:run:respawn:{guarded(tmp_path, 'db')}\n"
    (cluster.shared / "cltab").write_text(cltab)
    (cluster.shared / "hactl").write_text("web run\ndb run\n")
    for _ in range(3):  # a burst, as a stray `kill -HUP` to every process would be
        cluster.procs[holder].send_signal(signal.SIGHUP)
        time.sleep(0.2)
    cluster.wait_running("db")
    cluster.wait_for("the reload logged", lambda: "SIGHUP: re-reading cltab and hactl" in cluster.log(holder))
    time.sleep(2 * 1.0)  # two dead_after periods of the test cluster: a dead daemon would show by now
    assert cluster.procs[holder].poll() is None, "SIGHUP killed the daemon"
    assert cluster.running("web") == [holder] and starts(cluster, "web") == [holder]  # never restarted
    assert not cluster.fence_record(holder)


def test_sigquit_is_a_graceful_stop(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start()
    holder = cluster.wait_running("web")
    cluster.procs[holder].send_signal(signal.SIGQUIT)
    assert cluster.procs[holder].wait(timeout=60) == 0
    other = cluster.wait_running("web", 30, exclude=(holder,))
    assert starts(cluster, "web") == [holder, other]
    assert not cluster.fence_record(holder)  # a clean stop: nobody had to fence it
    assert "SIGQUIT: stopping gracefully" in cluster.log(holder)
    assert "stopping every local group" in cluster.log(holder)
