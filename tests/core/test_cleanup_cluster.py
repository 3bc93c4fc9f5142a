"""Cleanup entries (level ``stop``) with real daemons: they run on the node that held the group when it stops
there, for each way a daemon stops a group, and nowhere else."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.cluster import Cluster, guarded
from tests.conftest import require_commands

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
