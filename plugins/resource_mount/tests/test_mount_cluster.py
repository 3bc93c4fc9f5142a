"""A group of a mount and a process writing into it moves between two omha daemons without losing data.

Each daemon runs in its own private mount namespace (``unshare --mount``): two "nodes" with their own view of
mounts, sharing one loop device, as two servers share a SAN LUN.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from omha_testing.cluster import Cluster
from omha_testing.disks import Disk

pytestmark = pytest.mark.slow


def in_node(c: Cluster, node: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` in ``node``'s mount namespace (its daemon's)."""
    pid = c.procs[node].pid
    return subprocess.run(["nsenter", "-t", str(pid), "-m", "--", *argv], capture_output=True, timeout=30)


def test_mount_and_writer_move_without_losing_data(disk: Disk, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    log = mnt / "journal"
    cltab = (
        f"data:fs:run:wait:@mount {disk.device} {mnt} type=ext4 mkdir=yes kill_grace=1\n"
        f'data:writer:run:respawn:while :; do echo "$OMHA_NODE $(date +%s%N)" >> {log}; sleep 0.02; done\n'
    )
    unshare = ["unshare", "--mount", "--propagation", "private"]
    c = Cluster(
        tmp_path,
        2,
        cltab=cltab,
        hactl="data run\n",
        wrap={"n1": unshare, "n2": unshare},
        config={"quorum": {"policy": "ignore"}},
    )
    try:
        c.start()
        first = c.wait_running("data", 60)
        other = next(n for n in c.names if n != first)
        c.wait_for("the writer to write", lambda: in_node(c, first, "wc", "-l", str(log)).stdout.split()[:1] > [b"20"])
        before = in_node(c, first, "cat", str(log)).stdout
        assert before and in_node(c, other, "test", "-e", str(log)).returncode != 0  # not visible on the other node
        c.omha(first, "shutdown", "--wait")  # stops the writer, unmounts cleanly; the group moves
        assert c.wait_running("data", 60) == other
        c.wait_for(
            "the writer on the new node", lambda: f"{other} ".encode() in in_node(c, other, "cat", str(log)).stdout
        )
        after = in_node(c, other, "cat", str(log)).stdout
        # everything written before the move is still there, byte for byte, and the new node appends to it
        assert hashlib.sha256(after[: len(before)]).hexdigest() == hashlib.sha256(before).hexdigest()
        writers = [line.split()[0] for line in after.decode().splitlines()]
        assert writers[0] == first and writers[-1] == other
        assert writers == sorted(writers, key=lambda w: w != first)  # one switch-over, no interleaving
    finally:
        c.stop()
