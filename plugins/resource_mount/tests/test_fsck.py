"""``fsck=yes``: the filesystem is checked before it is mounted, and a damaged one is not mounted at all."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from omha_testing import require_commands
from omha_testing.disks import Disk, Node


def _debugfs(device: str, request: str) -> None:
    subprocess.run(["debugfs", "-w", "-R", request, device], capture_output=True, check=True)


def _state(device: str) -> str:
    out = subprocess.run(["dumpe2fs", "-h", device], capture_output=True, text=True, check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Filesystem state:"))


def test_fsck_yes_checks_an_unclean_filesystem_before_mounting(disk: Disk, nodes: Callable[[str], Node]) -> None:
    require_commands("debugfs", "dumpe2fs")
    a = nodes("a")
    mnt = a.root / "m"
    _debugfs(disk.device, "ssv state 0")  # as after a crash of the node that had it mounted
    assert _state(disk.device) == "not clean"

    for fsck, state_after in (("no", "not clean"), ("yes", "clean")):
        spec = f"{disk.device} {mnt} mkdir=yes type=ext4 fsck={fsck}"
        done = a.agent("acquire", spec)
        assert done.returncode == 0, done.stderr
        assert a.agent("release", spec).returncode == 0
        assert _state(disk.device) == state_after, f"fsck={fsck}"


def test_a_filesystem_fsck_cannot_repair_unattended_is_not_mounted(disk: Disk, nodes: Callable[[str], Node]) -> None:
    require_commands("debugfs")
    a = nodes("a")
    mnt = a.root / "m"
    _debugfs(disk.device, "clri <2>")  # wipe the root directory's inode
    _debugfs(disk.device, "ssv state 0")

    done = a.agent("acquire", f"UUID={disk.uuid} {mnt} mkdir=yes fsck=yes")
    assert done.returncode == 1
    assert f"fsck found errors on {disk.device} it could not fix unattended" in done.stderr
    assert "UNEXPECTED INCONSISTENCY" in done.stderr
    assert a.mounted(mnt) is None
