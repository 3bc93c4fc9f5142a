"""Release never reports success while the filesystem is still mounted on this node.

A mount stacked on ours, a bind mount of ours, or the device still mounted in another mount namespace (another
"node" here: on a real cluster, a container) each make the release fail with the reason; removing the blocker
makes the next release succeed. Release never unmounts what it did not mount itself.
"""

from __future__ import annotations

from collections.abc import Callable

from omha_testing.disks import Disk, Node

EXIT_OK, EXIT_FAILED = 0, 1


def _ours(node: Node, disk: Disk) -> list[str]:
    """Where ``node`` still has the disk mounted."""
    return [e.target for e in node.mounts() if e.source == disk.device]


def test_a_mount_stacked_on_ours_fails_the_release_and_leaves_both(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} type=ext4 mkdir=yes"
    assert a.agent("acquire", spec).returncode == EXIT_OK
    a.sh(f"echo kept > {mnt}/file && mount -t tmpfs omha-cover {mnt}")

    done = a.agent("release", spec)
    assert done.returncode == EXIT_FAILED
    assert f"busy: {disk.device} on {mnt} is not released" in done.stderr
    assert f"covered by omha-cover (tmpfs) on {mnt} mounted on top of it" in done.stderr
    assert _ours(a, disk) == [mnt], "our filesystem must still be mounted beneath the cover"
    top = a.mounted(mnt)
    assert top is not None and top.source == "omha-cover", "release must not unmount a mount it did not make"

    a.sh(f"umount {mnt}")  # the operator removes the cover
    done = a.agent("release", spec)
    assert done.returncode == EXIT_OK, done.stderr
    assert _ours(a, disk) == []


def test_a_bind_mount_of_ours_fails_the_release_naming_it(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt, whole, sub = str(a.root / "m"), str(a.root / "whole"), str(a.root / "sub")
    spec = f"{disk.device} {mnt} mkdir=yes"
    assert a.agent("acquire", spec).returncode == EXIT_OK
    a.sh(f"mkdir -p {whole} {sub} {mnt}/dir && echo kept > {mnt}/dir/file")
    a.sh(f"mount --bind {mnt} {whole} && mount --bind {mnt}/dir {sub}")

    done = a.agent("release", spec)
    assert done.returncode == EXIT_FAILED
    assert f"it is still mounted on {whole};" in done.stderr
    assert f"it is still mounted on {sub} (its directory /dir)" in done.stderr
    # the mount point itself was unmounted (as Pacemaker's Filesystem stop does); the binds are left alone
    assert a.mounted(mnt) is None
    assert sorted(_ours(a, disk)) == sorted([whole, sub])
    assert a.sh(f"cat {sub}/file").stdout == "kept\n"

    a.sh(f"umount {whole}")
    done = a.agent("release", spec)
    assert done.returncode == EXIT_FAILED and f"still mounted on {sub}" in done.stderr
    assert whole not in done.stderr

    a.sh(f"umount {sub}")
    done = a.agent("release", spec)
    assert done.returncode == EXIT_OK, done.stderr
    assert _ours(a, disk) == []


def test_the_device_mounted_in_another_namespace_fails_the_release(disk: Disk, nodes: Callable[[str], Node]) -> None:
    # mountinfo shows only this namespace; the kernel's exclusive claim on the block device shows them all
    a, b = nodes("a"), nodes("b")
    mnt_a, mnt_b = str(a.root / "m"), str(b.root / "m")
    spec = f"{disk.device} {mnt_a} mkdir=yes"
    assert a.agent("acquire", spec).returncode == EXIT_OK
    b.sh(f"mkdir {mnt_b} && mount {disk.device} {mnt_b}")

    done = a.agent("release", spec)
    assert done.returncode == EXIT_FAILED
    assert f"the kernel still holds {disk.device}" in done.stderr and "another node must not mount it" in done.stderr
    assert a.mounted(mnt_a) is None
    assert _ours(b, disk) == [mnt_b], "release must not reach into another namespace"

    # lazy=yes is the explicit acceptance of that risk: the same situation is then only a warning
    lazy = a.agent("release", f"{spec} lazy=yes")
    assert lazy.returncode == EXIT_OK, lazy.stderr
    assert "reporting success anyway because lazy=yes" in lazy.stderr

    b.sh(f"umount {mnt_b}")
    done = a.agent("release", spec)
    assert done.returncode == EXIT_OK, done.stderr
    assert "still holds" not in done.stderr
