"""``@mount`` acquire and release on a real ext4 loop device, in private mount namespaces ("nodes")."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from omha_testing.disks import Disk, Node, detach, make_disk, wait_for


def test_acquire_write_release_then_second_node_finds_the_file(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a, b = nodes("a"), nodes("b")
    mnt_a, mnt_b = a.root / "srv", b.root / "www"
    spec_a = f"{disk.device} {mnt_a} type=ext4 options=noatime mkdir=yes"

    done = a.agent("acquire", spec_a)
    assert done.returncode == 0, done.stderr
    entry = a.mounted(mnt_a)
    assert entry is not None and entry.source == disk.device and entry.fstype == "ext4"
    assert "noatime" in entry.mount_options and not entry.read_only
    assert b.mounted(mnt_a) is None, "the mount leaked out of node a's namespace"
    assert a.agent("acquire", spec_a).returncode == 0, "acquire is idempotent"
    assert len([e for e in a.mounts() if e.target == str(mnt_a)]) == 1, "a second acquire must not stack mounts"

    a.sh(f"echo payload-1 > {mnt_a}/data && sync")
    done = a.agent("release", spec_a)
    assert done.returncode == 0, done.stderr
    assert a.mounted(mnt_a) is None
    assert not (mnt_a / "data").exists(), "the file was written to the mount point, not the filesystem"
    assert a.agent("release", spec_a).returncode == 0, "release is idempotent"

    spec_b = f"{disk.device} {mnt_b} type=ext4 mkdir=yes"
    done = b.agent("acquire", spec_b)
    assert done.returncode == 0, done.stderr
    assert b.sh(f"cat {mnt_b}/data").stdout == "payload-1\n"
    assert b.agent("release", spec_b).returncode == 0
    assert b.mounted(mnt_b) is None


def test_label_and_uuid_devices_resolve_to_the_loop_device(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = a.root / "fs"
    for source in (f"LABEL={disk.label}", f"UUID={disk.uuid}"):
        spec = f"{source} {mnt} mkdir=yes"
        done = a.agent("acquire", spec)
        assert done.returncode == 0, f"{source}: {done.stderr}"
        entry = a.mounted(mnt)
        assert entry is not None and entry.source == disk.device, source
        assert a.agent("check", spec).returncode == 0
        done = a.agent("release", spec)
        assert done.returncode == 0, done.stderr
        assert a.mounted(mnt) is None, source


def test_image_file_with_loop_option_is_released_with_its_loop_device(
    tmp_path: Path, nodes: Callable[[str], Node]
) -> None:
    (tmp_path / "img").mkdir()
    image_disk = make_disk(tmp_path / "img")
    detach(image_disk.device)  # mount(8) sets up its own loop device for the file
    a = nodes("a")
    mnt = a.root / "img"
    spec = f"{image_disk.image} {mnt} options=loop mkdir=yes"
    done = a.agent("acquire", spec)
    assert done.returncode == 0, done.stderr
    entry = a.mounted(mnt)
    assert entry is not None and entry.source.startswith("/dev/loop")
    loop = os.path.basename(entry.source)
    done = a.agent("release", spec)
    assert done.returncode == 0, done.stderr
    assert a.mounted(mnt) is None
    backing = Path(f"/sys/block/{loop}/loop/backing_file")

    def detached() -> bool:
        try:
            return backing.read_text().strip() != str(image_disk.image)
        except OSError:
            return True

    wait_for(detached, f"the release of {entry.source}")
