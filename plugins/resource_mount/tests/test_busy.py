"""Releasing a busy mount: the processes that keep it busy are stopped (and only those), or it fails loudly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable

from omha_testing.disks import Disk, Node, wait_for


def _uses(proc: subprocess.Popen[str], mnt: str) -> Callable[[], bool]:
    """True once ``proc`` holds something on ``mnt``: its cwd, an open file, or (with no file open there any
    more) a memory map."""

    def ready() -> bool:
        base = f"/proc/{proc.pid}"
        try:
            links = [os.readlink(f"{base}/cwd")] + [os.readlink(f"{base}/fd/{fd}") for fd in os.listdir(f"{base}/fd")]
            with open(f"{base}/maps") as fh:
                mapped = f" {mnt}/" in fh.read()
        except OSError:
            return False
        if mapped:  # wait until the mapping alone holds the file
            return not any(link.startswith(f"{mnt}/") for link in links[1:])
        return any(link.startswith(mnt) for link in links)

    return ready


def test_release_stops_the_processes_using_the_mount_and_unmounts(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "data")
    spec = f"{disk.device} {mnt} mkdir=yes kill_grace=1"
    assert a.agent("acquire", spec).returncode == 0
    a.sh(f"echo x > {mnt}/file && mkdir {mnt}/dir")

    holders = {
        "open file": a.spawn(f"exec 3<{mnt}/file; exec sleep 600"),
        "cwd": a.spawn(f"cd {mnt}/dir && exec sleep 600"),
        "ignores SIGTERM": a.spawn(f"trap '' TERM; exec 3>>{mnt}/file; exec sleep 600"),
        "memory map": a.spawn(
            # mmap keeps a dup of the file's descriptor: close it so that only the mapping holds the file
            f"exec {sys.executable} -I -S -c \"import mmap,os,time; f=open('{mnt}/file','r+b'); "
            'm=mmap.mmap(f.fileno(), 0); f.close(); os.closerange(3, 4096); time.sleep(600)"'
        ),
    }
    for what, proc in holders.items():
        wait_for(_uses(proc, mnt), f"the process holding the mount by its {what}")
    bystander = subprocess.Popen(["sleep", "600"], cwd=mnt)  # host namespace: the bare directory, not the mount
    try:
        done = a.agent("release", spec)
        assert done.returncode == 0, done.stderr
        assert a.mounted(mnt) is None
        found_by = {"open file": "fd 3", "cwd": "cwd", "ignores SIGTERM": "fd 3", "memory map": "maps"}
        for what, proc in holders.items():
            assert re.search(rf"pid {proc.pid} \([^:]+: {found_by[what]}[ )]", done.stderr), f"{what}: {done.stderr}"
            code = proc.wait(timeout=20)
            expected = -signal.SIGKILL if what == "ignores SIGTERM" else -signal.SIGTERM
            assert code == expected, f"the process holding the mount by its {what} ended with {code}"
        assert "SIGKILL" in done.stderr
        assert bystander.poll() is None, "a process outside the mount was signalled"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_using_the_same_filesystem_through_another_mount_is_left_alone(
    disk: Disk, nodes: Callable[[str], Node]
) -> None:
    # fuser -m would match it by device number; it does not keep *our* mount busy, so it must survive
    a, b = nodes("a"), nodes("b")
    mnt_a, mnt_b = str(a.root / "m"), str(b.root / "m")
    spec_a, spec_b = f"{disk.device} {mnt_a} mkdir=yes", f"{disk.device} {mnt_b} mkdir=yes"
    assert a.agent("acquire", spec_a).returncode == 0
    assert b.agent("acquire", spec_b).returncode == 0
    user_a = a.spawn(f"cd {mnt_a} && exec sleep 600")
    user_b = b.spawn(f"cd {mnt_b} && exec sleep 600")
    wait_for(_uses(user_a, mnt_a), "the user in node a")
    wait_for(_uses(user_b, mnt_b), "the user in node b")

    done = a.agent("release", f"{spec_a} kill_grace=2")
    assert user_a.wait(timeout=20) == -signal.SIGTERM
    assert a.mounted(mnt_a) is None
    assert user_b.poll() is None, "the process in node b was stopped"
    assert b.mounted(mnt_b) is not None
    # node a's mount is gone, but the device is still mounted in node b's namespace: not released
    assert done.returncode == 1 and f"the kernel still holds {disk.device}" in done.stderr


def test_busy_with_kill_no_fails_naming_the_user_and_stays_mounted(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} mkdir=yes kill=no"
    assert a.agent("acquire", spec).returncode == 0
    user = a.spawn(f"cd {mnt} && exec sleep 600")
    wait_for(_uses(user, mnt), "the user")

    done = a.agent("release", spec)
    assert done.returncode == 1
    assert "busy" in done.stderr and f"pid {user.pid} (sleep: cwd)" in done.stderr and "kill=no" in done.stderr
    assert a.mounted(mnt) is not None, "release failed, so the filesystem must still be mounted"
    assert user.poll() is None

    user.kill()
    user.wait()
    assert a.agent("release", spec).returncode == 0
    assert a.mounted(mnt) is None


def test_lazy_unmount_only_when_asked(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} mkdir=yes kill=no lazy=yes"
    assert a.agent("acquire", spec).returncode == 0
    user = a.spawn(f"cd {mnt} && exec sleep 600")
    wait_for(_uses(user, mnt), "the user")

    done = a.agent("release", spec)
    assert done.returncode == 0, done.stderr
    assert "lazy unmount" in done.stderr
    assert a.mounted(mnt) is None
    assert user.poll() is None, "lazy=yes with kill=no detaches the mount without stopping its users"


def test_a_mount_beneath_keeps_it_busy_and_is_named(disk: Disk, nodes: Callable[[str], Node]) -> None:
    a = nodes("a")
    mnt = str(a.root / "m")
    spec = f"{disk.device} {mnt} mkdir=yes"
    assert a.agent("acquire", spec).returncode == 0
    a.sh(f"mkdir {mnt}/sub && mount -t tmpfs omha-test {mnt}/sub")

    done = a.agent("release", spec)
    assert done.returncode == 1
    assert f"omha-test (tmpfs) on {mnt}/sub mounted beneath it" in done.stderr
    assert a.mounted(mnt) is not None

    a.sh(f"umount {mnt}/sub")
    assert a.agent("release", spec).returncode == 0
