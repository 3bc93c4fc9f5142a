"""``@mount`` fitness checks and its error messages: each names what is wrong and what is expected."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omha_testing import require_root
from omha_testing.disks import Disk, Node, detach, make_disk

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def agent(action: str, argstring: str) -> subprocess.CompletedProcess[str]:
    """An agent action on the host: check and validation never mount anything."""
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    argv = [sys.executable, "-m", "omha_core.agent", "mount", action, argstring]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_check_passes_for_a_visible_device_and_fails_for_a_missing_one(disk: Disk, tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    assert agent("check", f"{disk.device} {mnt} mkdir=yes").returncode == EXIT_OK
    assert agent("check", f"UUID={disk.uuid} {mnt} mkdir=yes type=ext4").returncode == EXIT_OK

    done = agent("check", f"/dev/omha-no-such-disk {mnt} mkdir=yes")
    assert done.returncode == EXIT_FAILED
    assert "missing device: /dev/omha-no-such-disk does not exist on this node" in done.stderr

    done = agent("check", f"LABEL=omha-nolabel {mnt} mkdir=yes")
    assert done.returncode == EXIT_FAILED and "no device with LABEL=omha-nolabel on this node" in done.stderr


def test_check_fails_when_the_mount_point_cannot_be_there(disk: Disk, tmp_path: Path) -> None:
    done = agent("check", f"{disk.device} {tmp_path}/no/such/parent/mnt mkdir=yes")
    assert done.returncode == EXIT_FAILED
    assert f"parent directory {tmp_path}/no/such/parent does not exist" in done.stderr
    done = agent("check", f"{disk.device} {tmp_path}/mnt")
    assert done.returncode == EXIT_FAILED and "does not exist on this node; create it or add mkdir=yes" in done.stderr
    done = agent("check", f"{disk.device} {tmp_path} type=omhafs")
    assert done.returncode == EXIT_FAILED and "unknown filesystem type 'omhafs'" in done.stderr


def test_an_ambiguous_label_is_refused(disk: Disk, tmp_path: Path) -> None:
    (tmp_path / "twin").mkdir()
    twin = make_disk(tmp_path / "twin")
    try:
        subprocess.run(["e2label", twin.device, disk.label], check=True)
        done = agent("check", f"LABEL={disk.label} {tmp_path}")
        assert done.returncode == EXIT_FAILED
        assert f"ambiguous LABEL={disk.label}" in done.stderr
        assert disk.device in done.stderr and twin.device in done.stderr
    finally:
        detach(twin.device)


@pytest.mark.parametrize(
    ("argstring", "message"),
    [
        ("/dev/sda1", "@mount takes DEVICE MOUNTPOINT"),
        ("/dev/sda1 relative/dir", "mount point 'relative/dir' is not an absolute path"),
        ("/dev/sda1 /mnt kil_grace=3", "unknown parameter(s) kil_grace; known: fsck, kill, kill_grace"),
        (
            "/dev/sda1 /mnt kill_grace=soon",
            "@mount: kill_grace='soon': expected a number of seconds, greater than zero",
        ),
        ("/dev/sda1 /mnt fsck=maybe", "@mount: fsck='maybe': expected yes or no"),
        ("/dev/sda1 /mnt options='noatime, ro'", "contains blanks; separate options with commas"),
        ("/srv/data /mnt options=bind", "option(s) bind are not supported"),
        ("server:/export /mnt fsck=yes", "fsck=yes makes no sense for the network source server:/export"),
        ("sda1 /mnt", "device 'sda1' is not an absolute path, LABEL=, UUID="),
        ("/dev/sda1 /", "refusing to manage the root filesystem"),
    ],
)
def test_malformed_entries_are_refused_before_anything_runs(argstring: str, message: str) -> None:
    done = agent("acquire", argstring)
    assert done.returncode == EXIT_USAGE
    assert message in done.stderr


def test_acquire_errors_name_the_problem(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = a.root / "m"
    cases = {
        f"{disk.device} {mnt} mkdir=yes type=omhafs": "unknown filesystem type 'omhafs'",
        f"/dev/omha-no-such-disk {mnt} mkdir=yes": "missing device: /dev/omha-no-such-disk does not exist",
        f"{disk.device} {mnt}": f"mount point {mnt} does not exist; create it or add mkdir=yes",
        f"{disk.device} {mnt} mkdir=yes type=ext2": "wrong fs type",
    }
    for argstring, message in cases.items():
        done = a.agent("acquire", argstring)
        assert done.returncode == EXIT_FAILED, argstring
        assert message in done.stderr, (argstring, done.stderr)
        assert a.mounted(mnt) is None


def test_permission_denied_is_reported_and_never_counted_as_released(disk: Disk, nodes: Callable[[str], Node]) -> None:
    require_root()
    a = nodes("a")
    mnt = a.root / "m"
    spec = f"{disk.device} {mnt} mkdir=yes"
    no_admin = ("setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin")

    done = a.agent("acquire", spec, *no_admin)
    assert done.returncode == EXIT_FAILED
    assert "permission denied mounting" in done.stderr and "CAP_SYS_ADMIN" in done.stderr
    assert a.mounted(mnt) is None

    assert a.agent("acquire", spec).returncode == EXIT_OK
    done = a.agent("release", spec, *no_admin)
    assert done.returncode == EXIT_FAILED and "permission denied unmounting" in done.stderr
    assert a.mounted(mnt) is not None
    assert a.agent("release", spec).returncode == EXIT_OK
