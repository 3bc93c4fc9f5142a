"""Real mounts for the ``@mount`` tests: an ext4 image on a loop device, and "nodes" that are private mount
namespaces, so that nothing these tests mount is ever visible on the host.

A node is a ``sleep`` process started by ``unshare --mount --propagation private``; it keeps the namespace
alive while the test runs agent actions and helper commands inside it through ``nsenter``. Teardown kills
every process started in a node, unmounts what is left under the test's temp dir, ends the namespace and
detaches the loop device, whatever the test's outcome, then fails the test if a mount leaked to the host.

Shared by the ``@mount`` tests, the ``@ocf`` tests (``heartbeat:Filesystem``) and the fault campaign. What a node
has mounted is read by this module's own small mountinfo reader (:class:`Mount`), not the ``@mount`` plugin's:
the ``@ocf`` tests run where that plugin is not installed, and the plugin's parser is not its own oracle.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from omha_testing import require_commands, require_root

COMMANDS = ("unshare", "nsenter", "losetup", "mkfs.ext4", "blkid", "mount", "umount", "fsck", "setpriv")
DEADLINE = 20.0


def wait_for(predicate: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class Disk:
    """An ext4 filesystem image attached to a loop device."""

    image: Path
    device: str
    label: str
    uuid: str


@dataclass
class Node:
    """A private mount namespace standing in for one cluster node."""

    name: str
    root: Path  # everything this node mounts lies under it
    holder: subprocess.Popen[bytes]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, root: Path) -> Node:
        holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "infinity"])
        node = cls(name, root, holder)
        ours = os.readlink("/proc/self/ns/mnt")

        def entered() -> bool:
            try:
                return os.readlink(f"/proc/{holder.pid}/ns/mnt") != ours
            except OSError:
                return False

        try:
            wait_for(entered, f"node {name}'s mount namespace")
        except BaseException:
            node.close()
            raise
        return node

    def cmd(self, *argv: str) -> list[str]:
        """``argv`` run inside this node's mount namespace."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--", *argv]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command in the node and return its outcome (not checked)."""
        return subprocess.run(self.cmd(*argv), capture_output=True, text=True, timeout=timeout, check=False)

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the node; fail the test when it fails."""
        proc = self.run("sh", "-c", script)
        assert proc.returncode == 0, f"{script!r} failed in node {self.name}: {proc.stderr}"
        return proc

    def spawn(self, script: str) -> subprocess.Popen[str]:
        """Start a long-running shell script in the node (killed at teardown)."""
        proc = subprocess.Popen(self.cmd("sh", "-c", script), text=True, stdout=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def agent_argv(self, action: str, argstring: str, *wrapper: str) -> list[str]:
        return self.cmd(*wrapper, sys.executable, "-m", "omha_core.agent", "mount", action, argstring)

    def agent(self, action: str, argstring: str, *wrapper: str) -> subprocess.CompletedProcess[str]:
        """Run one ``@mount`` action the way the local init does: ``python -m omha_core.agent``."""
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        argv = self.agent_argv(action, argstring, *wrapper)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False)

    def agent_popen(self, action: str, argstring: str) -> subprocess.Popen[str]:
        """Start a long-running ``@mount`` action (``respawn``) in the node."""
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        proc = subprocess.Popen(
            self.agent_argv(action, argstring), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.procs.append(proc)
        return proc

    def mounts(self) -> list[Mount]:
        """This node's mounts, read from its holder's mountinfo."""
        return read_mounts(f"/proc/{self.holder.pid}/mountinfo")

    def mounted(self, target: Path | str) -> Mount | None:
        """What this node has mounted on ``target`` (of mounts stacked there, the one on top)."""
        stacked = [m for m in self.mounts() if m.target == str(target)]
        below = {m.parent_id for m in stacked}
        on_top = [m for m in stacked if m.mount_id not in below]
        return on_top[-1] if on_top else None

    def close(self) -> None:
        """Kill what runs in the node, unmount what is left, end the namespace."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        if self.holder.poll() is None:
            try:
                leftovers = [m.target for m in self.mounts() if m.target.startswith(str(self.root))]
            except OSError:
                leftovers = []
            for target in reversed(leftovers):
                self.run("umount", "-l", target, timeout=30)
            self.holder.kill()
        self.holder.wait()


@dataclass(frozen=True)
class Mount:
    """One line of a mountinfo file: the fields the tests look at."""

    mount_id: int
    parent_id: int
    target: str
    mount_options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_options or "ro" in self.super_options

    def describe(self) -> str:
        return f"{self.source} ({self.fstype}) on {self.target}"


def read_mounts(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """The mounts listed in a mountinfo file, in the kernel's order (see proc(5); octal escapes undone)."""

    def unescape(field: str) -> str:
        return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)

    mounts = []
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            f = line.split()
            sep = f.index("-")  # optional fields (shared:N, master:N) come before the separator
            mounts.append(
                Mount(
                    mount_id=int(f[0]),
                    parent_id=int(f[1]),
                    target=unescape(f[4]),
                    mount_options=tuple(f[5].split(",")),
                    fstype=f[sep + 1],
                    source=unescape(f[sep + 2]),
                    super_options=tuple(f[sep + 3].split(",")),
                )
            )
    return mounts


def make_disk(directory: Path) -> Disk:
    """Create a 32 MiB ext4 image with a random label and UUID, attached to a free loop device."""
    image = directory / "disk.img"
    with open(image, "wb") as fh:
        fh.truncate(32 * 1024 * 1024)
    label = "omha" + secrets.token_hex(4)
    fs_uuid = str(uuid.uuid4())
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, "-U", fs_uuid, str(image)], check=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Disk(image, device, label, fs_uuid)


def detach(device: str) -> None:
    """Detach a loop device, retrying while a dying namespace still holds its mount."""
    deadline = time.monotonic() + 10
    while subprocess.run(["losetup", "-d", device], capture_output=True, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"could not detach loop device {device}")
        time.sleep(0.1)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """An ext4 loop device for this test; detached afterwards, and no mount may leak to the host."""
    require_root()
    require_commands(*COMMANDS)
    made = make_disk(tmp_path)
    try:
        yield made
    finally:
        detach(made.device)
        leaked = [m.describe() for m in read_mounts() if m.target.startswith(str(tmp_path))]
        assert not leaked, f"mounts leaked into the host namespace: {leaked}"


@pytest.fixture
def nodes(disk: Disk, tmp_path: Path) -> Iterator[Callable[[str], Node]]:
    """Factory of nodes (private mount namespaces); all are ended before the disk is detached."""
    started: list[Node] = []

    def start(name: str) -> Node:
        root = tmp_path / name
        root.mkdir()
        node = Node.start(name, root)
        started.append(node)
        return node

    try:
        yield start
    finally:
        for node in reversed(started):
            node.close()
