"""``@mount`` under respawn: the monitor notices a mount lost behind omha's back, and respawning re-mounts."""

from __future__ import annotations

from collections.abc import Callable

from omha_resource_mount.probe import probe_name
from omha_testing.disks import Disk, Node, wait_for

EXIT_LOST = 3


def test_unmount_behind_omhas_back_is_noticed_and_respawn_remounts(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"LABEL={disk.label} {mnt} mkdir=yes type=ext4 probe=yes probe_timeout=5"

    first = a.agent_popen("respawn", spec)
    wait_for(lambda: a.mounted(mnt) is not None, "the first acquire")
    a.sh(f"echo before > {mnt}/kept")
    a.sh(f"umount {mnt}")
    assert first.wait(timeout=20) == EXIT_LOST
    _, err = first.communicate()
    assert "is not mounted" in err and "resource lost" in err

    # the init restarts a respawn entry that exits: the new child re-acquires
    second = a.agent_popen("respawn", spec)
    wait_for(lambda: a.mounted(mnt) is not None, "the re-mount")
    assert a.sh(f"cat {mnt}/kept").stdout == "before\n"
    second.terminate()  # leaving the level: the child releases, then exits 0
    assert second.wait(timeout=30) == 0, second.communicate()[1]
    assert a.mounted(mnt) is None


def test_read_only_remount_behind_omhas_back_is_noticed(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} mkdir=yes"

    watcher = a.agent_popen("respawn", spec)
    wait_for(lambda: a.mounted(mnt) is not None, "the acquire")
    a.sh(f"mount -o remount,ro {mnt}")
    assert watcher.wait(timeout=20) == EXIT_LOST
    assert "read-only" in watcher.communicate()[1]

    # the next acquire repairs it: unmount the read-only mount, mount it writable again
    done = a.agent("acquire", spec)
    assert done.returncode == 0, done.stderr
    entry = a.mounted(mnt)
    assert entry is not None and not entry.read_only
    assert a.agent("release", spec).returncode == 0


def test_someone_elses_mount_on_the_mount_point_is_noticed(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} mkdir=yes"

    watcher = a.agent_popen("respawn", spec)
    wait_for(lambda: a.mounted(mnt) is not None, "the acquire")
    a.sh(f"mount -t tmpfs intruder {mnt}")
    assert watcher.wait(timeout=20) == EXIT_LOST
    assert "intruder (tmpfs)" in watcher.communicate()[1]
    done = a.agent("acquire", spec)
    assert done.returncode == 1 and "busy: mount point" in done.stderr and "intruder (tmpfs)" in done.stderr


def test_a_write_probe_that_hangs_counts_as_lost(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = a.root / "m"
    spec = f"{disk.device} {mnt} mkdir=yes probe=yes probe_timeout=1"

    watcher = a.agent_popen("respawn", spec)
    wait_for(lambda: a.mounted(mnt) is not None, "the acquire")
    # a FIFO under the probe's name blocks its open() the way every call blocks on a dead NFS server
    a.sh(f"mkfifo {mnt}/{probe_name()}")
    assert watcher.wait(timeout=20) == EXIT_LOST
    err = watcher.communicate()[1]
    assert "write probe" in err and "timed out after 1s" in err
    a.sh(f"rm {mnt}/{probe_name()}")
    assert a.agent("release", spec).returncode == 0
