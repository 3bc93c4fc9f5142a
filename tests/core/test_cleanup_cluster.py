"""Cleanup entries (level ``stop``) with real daemons: they run on the node that held the group when it stops
there, for each way a daemon stops a group, and nowhere else."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded

pytestmark = pytest.mark.slow


def test_cleanup_runs_on_the_holder_at_hactl_stop_shutdown_and_quorum_loss(tmp_path: Path) -> None:
    require_commands("flock")
    cleanups = tmp_path / "cleanups"
    cltab = f'web:srv:run:respawn:{guarded(tmp_path, "web")}\nweb:clean:stop:wait:echo "$OMHA_NODE" >> {cleanups}\n'
    c = Cluster(tmp_path, 3, cltab=cltab, hactl="web run\n")

    def done() -> list[str]:
        return cleanups.read_text().split() if cleanups.exists() else []

    try:
        c.start()
        first = c.wait_running("web")
        assert done() == []  # the nodes that never ran it (and the holder, starting it) cleaned up nothing
        # hactl says stop
        c.omha(first, "tell", "web", "stop")
        c.wait_for("the cleanup on the holder", lambda: done() == [first])
        # omha shutdown (SIGTERM) of the holder: the group moves on, after the cleanup ran where it was
        c.omha(first, "tell", "web", "run")
        second = c.wait_running("web")
        c.kill(second, signal.SIGTERM)
        assert c.procs[second].returncode == 0
        assert done() == [first, second]
        third = c.wait_running("web", exclude=(second,))
        # quorum lost: the last node left alone stops the group, cleaning up
        for n in c.names:
            if n not in (second, third):
                c.kill(n, signal.SIGKILL)
        c.wait_for("the cleanup after quorum loss", lambda: done() == [first, second, third])
        assert not c.running("web")
    finally:
        c.close()


def test_no_cleanup_on_a_node_thawed_after_another_took_the_group_over(tmp_path: Path) -> None:
    """A daemon frozen (SIGSTOP) past ``dead_after`` is replaced (no fence device: after the unfenced grace); once
    thawed it stops the group it still ran, but its cleanup must not run: the group is the other node's now."""
    cleanups = tmp_path / "cleanups"
    cltab = f'web:srv:run:respawn:sleep 100000\nweb:clean:stop:wait:echo "$OMHA_NODE" >> {cleanups}\n'
    config = {"quorum": {"policy": "ignore"}, "fencing": {"unfenced_grace": 1.0}}
    c = Cluster(tmp_path, 2, cltab=cltab, hactl="web run\n", config=config)
    try:
        c.start()
        frozen = c.wait_running("web")
        c.procs[frozen].send_signal(signal.SIGSTOP)
        other = c.wait_running("web", 30, exclude=(frozen,))
        c.procs[frozen].send_signal(signal.SIGCONT)
        c.wait_for("the thawed node to stop web", lambda: c.running("web") == [other], 30)
        c.wait_for(
            "the thawed node to report web stopped",
            lambda: c.report()["nodes"][frozen].get("groups", {}).get("web", {}).get("state") in ("DONE", None),
            30,
        )
        assert not cleanups.exists() or frozen not in cleanups.read_text().split()
    finally:
        c.close()


def test_cleanup_runs_on_a_node_that_loses_the_store_before_the_others_take_over(tmp_path: Path) -> None:
    """The watchdog stops the groups of a node cut off from the store half-way to ``dead_after``: it still holds
    them then (the others cannot have declared it lost yet), so their cleanup runs."""
    cleanups = tmp_path / "cleanups"
    cltab = f'web:srv:run:respawn:sleep 100000\nweb:clean:stop:wait:echo "$OMHA_NODE" >> {cleanups}\n'
    config = {"quorum": {"policy": "ignore"}, "fencing": {"unfenced_grace": 1.0}}
    c = Cluster(tmp_path, 2, cltab=cltab, hactl="web run\n", config=config)
    link = tmp_path / "n1-view-of-shared"
    link.symlink_to(c.shared)
    cfg = c.config_path("n1")
    cfg.write_text(cfg.read_text().replace(f'"{c.shared}"', f'"{link}"'))
    try:
        c.start("n1")
        assert c.wait_running("web") == "n1"
        c.start("n2")
        link.unlink()
        link.symlink_to(tmp_path / "nowhere")  # n1's store calls now fail
        assert c.wait_running("web", 30, exclude=("n1",)) == "n2"
        c.wait_for("n1's cleanup", lambda: cleanups.exists() and cleanups.read_text().split() == ["n1"])
    finally:
        c.close()
