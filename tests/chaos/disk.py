"""The campaign's shared disk for ``@mount`` groups (``--mount``): an ext4 loop device and who has it mounted.

Every node's daemon runs in its own private mount namespace (``unshare -m``), as two servers on one SAN LUN
each have their own mounts; the group ``gm`` mounts :attr:`SharedDisk.device` on :attr:`SharedDisk.target`
through ``@mount``. Powering a node off (the fence device kills every process of the node) ends its mount
namespace, and with it the node's mounts, as losing power does. :class:`MountSampler` records, every ``period``
seconds, which nodes (and whether the host itself) see the filesystem mounted, for the checker: never two
nodes at once, never a node after its fence or its daemon's stop, never the host.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from omha_testing.disks import detach, make_disk

#: the holder name recorded when the host's own mount namespace has the filesystem mounted (a leak)
HOST = "host"


class SharedDisk:
    """A 32 MiB ext4 image on a free loop device, under ``base/disk``; :meth:`close` detaches it."""

    def __init__(self, base: Path) -> None:
        directory = base / "disk"
        directory.mkdir(parents=True, exist_ok=True)
        made = make_disk(directory)
        self.device = made.device
        self.target = base / "mnt"

    def cltab_line(self) -> str:
        """The ``@mount`` entry of group ``gm``."""
        return f"gm:fs:run:wait:@mount {self.device} {self.target} type=ext4 mkdir=yes kill_grace=1\n"

    def close(self) -> None:
        detach(self.device)


def _mounted(mountinfo: str, target: str) -> bool:
    """Whether ``target`` is a mount point in a ``/proc/PID/mountinfo`` text (field 5 is the mount point)."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4 and fields[4] == target:
            return True
    return False


def holders(cluster: str, target: str) -> list[str]:
    """The nodes of ``cluster`` with ``target`` mounted in some mount namespace of theirs, plus :data:`HOST`.

    A node's processes carry ``OMHA_CLUSTER`` and ``OMHA_NODE`` in their environment; each distinct mount
    namespace among them is read once."""
    want = f"OMHA_CLUSTER={cluster}".encode()
    seen: dict[str, str] = {}  # namespace -> node
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
            ns = os.readlink(f"/proc/{pid}/ns/mnt")
        except OSError:
            continue
        if want not in env or ns in seen:
            continue
        node = next((e[len(b"OMHA_NODE="):].decode() for e in env if e.startswith(b"OMHA_NODE=")), "?")
        try:
            with open(f"/proc/{pid}/mountinfo") as fh:
                if _mounted(fh.read(), target):
                    seen[ns] = node
        except OSError:
            continue
    found = set(seen.values())
    with open("/proc/self/mountinfo") as fh:
        if _mounted(fh.read(), target):
            found.add(HOST)
    return sorted(found)


class MountSampler(threading.Thread):
    """Every ``period`` seconds, who has the disk mounted; a ``mount`` line in the harness log at every change."""

    def __init__(self, cluster: str, target: Path, log: Path, period: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.cluster, self.target, self.log, self.period = cluster, str(target), log, period
        self.stopping = threading.Event()

    def run(self) -> None:
        last: list[str] | None = None
        while not self.stopping.is_set():
            begun = time.monotonic()
            now = holders(self.cluster, self.target)
            if now != last:
                with open(self.log, "a") as fh:
                    fh.write(json.dumps({"ev": "mount", "holders": now, "begun": begun, "mono": time.monotonic(),
                                         "wall": time.time()}) + "\n")
                last = now
            self.stopping.wait(self.period)
