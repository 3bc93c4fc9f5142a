"""Two daemons under one node name never both act as that node (real daemons on a shared directory).

Claims, status and fence records are keyed by node name, so a second daemon believing it is ``nX`` (a copied
config, two hosts with the same short hostname) would take ``nX``'s claims for its own and start its groups a
second time. The safety lock of :func:`omha_testing.cluster.guarded` catches any overlap when the cluster closes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_commands("flock")
    c = Cluster(tmp_path, 3, cltab=web_cltab(tmp_path), hactl="web run\n")
    extra: list[subprocess.Popen[bytes]] = []
    c.extra = extra  # type: ignore[attr-defined]
    yield c
    for proc in extra:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    c.close()


def twin(c: Cluster, node: str, copy: str) -> Path:
    """A config that runs as ``node`` but with its own state directory and log: a second host of that name."""
    d = c.tmp / copy
    d.mkdir()
    text = c.config_path(node).read_text()
    text = text.replace(str(c.tmp / node / "state"), str(d / "state")).replace(
        str(c.tmp / node / "omha.log"), str(d / "omha.log")
    )
    assert str(d / "state") in text
    (d / "omha.toml").write_text(text)
    return d / "omha.toml"


def start(c: Cluster, config: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "omha_core.cli", "daemon", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    c.extra.append(proc)  # type: ignore[attr-defined]
    return proc


def starts(c: Cluster) -> list[str]:
    return [line.split()[1] for line in c.safety_log("web") if line.startswith("start")]


def test_second_daemon_on_the_same_state_dir_is_refused(cluster: Cluster) -> None:
    cluster.start()
    holder = cluster.wait_running("web")
    proc = start(cluster, cluster.config_path(holder))
    assert proc.wait(20) == 1
    log = cluster.log(holder)
    assert "daemon.lock is locked by another omha daemon" in log
    assert f"(pid {cluster.procs[holder].pid})" in log
    assert cluster.procs[holder].poll() is None  # the first daemon carries on, its control socket intact
    assert (cluster.tmp / holder / "state" / "omha.sock").is_socket()
    assert cluster.running("web") == [holder] and starts(cluster) == [holder]


def test_second_host_with_the_same_node_name_is_refused(cluster: Cluster) -> None:
    cluster.start()
    holder = cluster.wait_running("web")
    config = twin(cluster, holder, "twin")
    proc = start(cluster, config)
    assert proc.wait(20) == 1
    log = (config.parent / "omha.log").read_text()
    assert f"another omha daemon is running as node '{holder}'" in log
    assert f"pid {cluster.procs[holder].pid}" in log
    time.sleep(1.0)
    assert cluster.running("web") == [holder] and starts(cluster) == [holder]
    assert cluster.procs[holder].poll() is None


def test_daemon_restarted_after_a_crash_resumes_its_claim(cluster: Cluster) -> None:
    """The guard against duplicates must not stop a crashed daemon's successor from taking its place."""
    cluster.start()
    holder = cluster.wait_running("web")
    cluster.kill(holder, signal.SIGKILL)  # its guard stops the server; the claim stays in the store
    cluster.start(holder)
    cluster.wait_for("web running again", lambda: cluster.running("web"), 30)
    assert "another omha daemon" not in cluster.log(holder)


def test_two_daemons_started_together_under_one_name_leave_at_most_one(cluster: Cluster) -> None:
    cluster.start("n1", "n3")
    holder = cluster.wait_running("web")
    configs = [cluster.config_path("n2"), twin(cluster, "n2", "twin")]
    procs = [start(cluster, cfg) for cfg in configs]
    cluster.wait_for("one of the two to give up", lambda: any(p.poll() is not None for p in procs), 30)
    time.sleep(2.0)  # the other: sole n2 now, or stopping too if both started before either published
    assert sorted(p.returncode for p in procs if p.poll() is not None) in ([1], [1, 1])
    assert starts(cluster) == [holder]


def test_thawed_daemon_and_the_daemon_that_replaced_it_both_stop(cluster: Cluster) -> None:
    """A frozen n2 looks dead, so a second n2 may start; when the first thaws, both publish as n2: both stop."""
    cluster.start()
    holder = cluster.wait_running("web")
    other = next(n for n in cluster.names if n != holder)  # the other two keep a quorum while it is frozen
    cluster.kill(other, signal.SIGSTOP)
    replacement = start(cluster, twin(cluster, other, "twin"))
    log = cluster.tmp / "twin" / "omha.log"
    cluster.wait_for("the replacement to start", lambda: log.exists() and f"node {other} up" in log.read_text())
    cluster.kill(other, signal.SIGCONT)
    assert replacement.wait(30) == 1 and cluster.procs[other].wait(30) == 1
    message = f"another omha daemon publishes as node '{other}'"
    assert message in log.read_text() and message in cluster.log(other)
    assert cluster.running("web") == [holder] and starts(cluster) == [holder]
