"""The local cluster's fence command (``python -m omha_core.localcluster power-off``) must act as a power cut.

Every test and the campaign trust it: "fenced" means nothing of the node runs any more. A CI run of the CTS
Stonithd scenario found a group process that outlived it: the fence SIGKILLed the group's process first, the
still-living daemon respawned it in the instant before its own SIGKILL, and the new child, caught between fork
and exec, carried no environment marker yet; it then ran on, beside the instance another node started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from omha_core.init.cgroups import cgroup2_parent
from omha_core.init.owners import scope_of
from omha_core.localcluster import LocalCluster, _running, node_processes, power_off
from tests.core.init_helpers import require_cgroup2

#: a stand-in for a daemon caught mid-respawn: its child is forked, and execs a marked process only later
MID_SPAWN = textwrap.dedent(
    """
    import os, sys, time
    cluster, node, ready = sys.argv[1], sys.argv[2], sys.argv[3]
    if os.fork() == 0:
        time.sleep(0.6)  # between fork and exec, as a posix_spawn child briefly is
        env = dict(os.environ, OMHA_CLUSTER=cluster, OMHA_NODE=node)
        os.execve("/bin/sleep", ["sleep", "60"], env)
    open(ready, "w").close()
    time.sleep(60)
    """
)


def test_power_off_kills_a_child_forked_before_the_cut_that_execs_after_it(tmp_path: Path) -> None:
    cluster = f"fake-{uuid.uuid4().hex[:8]}"
    node_dir = tmp_path / "n1"
    node_dir.mkdir()
    config = node_dir / "omha.toml"
    config.write_text(f'[cluster]\nname = "{cluster}"\n')
    ready = tmp_path / "ready"
    env = {k: v for k, v in os.environ.items() if k not in ("OMHA_CLUSTER", "OMHA_NODE")}
    # the config's path in its command line, as a real daemon's (`omha daemon -c .../n1/omha.toml`)
    daemon = subprocess.Popen([sys.executable, "-c", MID_SPAWN, cluster, "n1", str(ready), str(config)], env=env)
    try:
        (node_dir / "daemon.pid").write_text(str(daemon.pid))
        deadline = time.monotonic() + 10
        while not ready.exists():
            assert time.monotonic() < deadline, "the stand-in daemon did not start"
            time.sleep(0.01)
        assert power_off(tmp_path, "n1")
        assert daemon.wait(5) == -signal.SIGKILL
        time.sleep(1.0)  # past the child's exec, had it survived
        left = [p for p in node_processes(cluster, "n1") if _running(p)]
        assert not left, f"processes of the powered-off node still run: {left}"
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        for pid in node_processes(cluster, "n1"):
            os.kill(pid, signal.SIGKILL)


def test_a_node_powered_off_for_good_leaves_no_cgroup_tree(tmp_path: Path) -> None:
    """Its daemon and guard die together, so nobody removes the init's cgroup tree but whoever ran the node: the
    development machine had 39 such empty trees from earlier test runs."""
    require_cgroup2()
    parent, _ = cgroup2_parent()
    assert parent is not None
    scope = scope_of("n1", os.path.abspath(tmp_path / "n1" / "state"))

    def trees() -> list[str]:
        return [name for name in os.listdir(parent) if name.startswith(f"omha-{scope}-")]

    cluster = LocalCluster(tmp_path, 1, cltab="g:s:run:respawn:sleep 300\n", hactl="g run\n")
    try:
        cluster.start()
        cluster.wait_running("g")
        assert trees(), "the node's init holds its children in a cgroup tree"
        assert power_off(tmp_path, "n1")
        assert trees(), "a power cut leaves the tree (nothing of the node runs to remove it)"
    finally:
        cluster.stop()
    assert not trees()
