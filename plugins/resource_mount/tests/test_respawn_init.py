"""A ``respawn`` ``@mount`` entry under the real local init: unmounted behind omha's back, it comes back.

The init runs in a test node's mount namespace (``init_driver.py`` under ``nsenter``): its monitor child
notices the loss and exits 3, the init restarts the entry, and the new child's acquire mounts again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omha_testing.disks import DEADLINE, Disk, Node, wait_for

DRIVER = Path(__file__).with_name("init_driver.py")
EXIT_LOST = 3


class Init:
    """Orders to an ``init_driver.py`` process, one line each way."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc

    def ask(self, order: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(order + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"the init driver died; its log:\n{self.close()}"
        return answer.strip()

    def entry(self, group: str, tag: str) -> dict[str, Any]:
        """The status of one entry."""
        entry: dict[str, Any] = json.loads(self.ask("status"))[group]["entries"][tag]
        return entry

    def close(self) -> str:
        """Shut the init down (it stops every entry) and return its log; kill it if it does not exit."""
        try:
            _, log = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, log = self.proc.communicate()
        return log


@contextmanager
def local_init(node: Node, cltab: str, tmp: Path) -> Iterator[Init]:
    """The real local init on ``cltab``, running in ``node``; shut down at the end, whatever happens."""
    path = tmp / f"cltab.{node.name}"
    path.write_text(cltab)
    proc = subprocess.Popen(
        node.cmd(sys.executable, str(DRIVER), str(path)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    node.procs.append(proc)  # the node kills it at teardown should close() not be reached
    init = Init(proc)
    try:
        yield init
    finally:
        if proc.poll() is None:
            init.close()


def test_respawn_mount_is_remounted_by_the_init_after_an_unmount_behind_its_back(
    disk: Disk, nodes: Callable[[str], Node], tmp_path: Path
) -> None:
    a = nodes("a")
    mnt = str(a.root / "fs")
    cltab = f"g:fs:run:respawn:@mount {disk.device} {mnt} type=ext4 mkdir=yes kill_grace=1\n"

    with local_init(a, cltab, tmp_path) as init:
        assert init.ask("tell g run") == "ok"
        assert init.ask(f"settle g {DEADLINE}") == "DONE"
        wait_for(lambda: a.mounted(mnt) is not None, "the first acquire")
        a.sh(f"echo before > {mnt}/kept && sync")
        first_pid = init.entry("g", "fs")["pid"]

        a.sh(f"umount {mnt}")  # behind omha's back
        wait_for(lambda: init.entry("g", "fs")["restarts"] >= 1, "the init to restart the entry")
        entry = init.entry("g", "fs")
        assert entry["exit"] == EXIT_LOST, entry
        assert entry["pid"] != first_pid
        wait_for(lambda: a.mounted(mnt) is not None, "the re-mount")

        mounted = a.mounted(mnt)
        assert mounted is not None and mounted.source == disk.device and mounted.fstype == "ext4"
        assert not mounted.read_only
        assert a.sh(f"cat {mnt}/kept").stdout == "before\n", "the same filesystem came back"
        a.sh(f"echo after > {mnt}/new && sync && rm {mnt}/kept")  # and it is writable
        assert init.entry("g", "fs")["state"] == "running"

        assert init.ask("tell g stop") == "ok"
        assert init.ask(f"settle g {DEADLINE}") == "DONE"
        assert a.mounted(mnt) is None, "leaving the level released the mount"
        assert init.entry("g", "fs")["restarts"] == 1, "one loss, one restart"
        log = init.close()
    assert init.proc.returncode == 0, log
    assert "g/fs: @mount" in log and "resource lost, re-acquiring" in log, log
