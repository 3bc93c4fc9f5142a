"""Finding and stopping the processes that keep a mount busy, through /proc as fuser(1) does.

A process keeps a mount busy through its root, working directory, executable, open files and file-backed
memory maps. fuser -m compares device numbers, which also hits processes that use the same filesystem through
*another* mount (a bind mount, or another mount namespace on the same node) and would not block our unmount.
This module compares mount ids instead: ``mnt_id`` in ``/proc/PID/fdinfo/N`` for open files, and for the
other links the mount id of an ``O_PATH`` descriptor opened on ``/proc/PID/{root,cwd,exe,map_files/...}``.
So exactly the processes that make umount(2) fail with EBUSY are stopped, and nothing else.

Every user found is then held by a pidfd and checked again, so a signal can never reach a process that merely
reused the pid of one that exited meanwhile.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from dataclasses import dataclass, field

log = logging.getLogger("omha.mount")

#: seconds to wait for killed processes to vanish (a process in uninterruptible I/O may never do so)
KILL_WAIT = 5.0


@dataclass
class User:
    """A process using the mount, held by a pidfd."""

    pid: int
    name: str
    how: str  # the first way it was found: "cwd", "fd 3 /srv/www/log", ...
    pidfd: int = field(repr=False)

    def describe(self) -> str:
        """``pid 123 (sleep: cwd)`` for messages."""
        return f"pid {self.pid} ({self.name}: {self.how})"

    def state(self) -> str:
        """The kernel's one-letter process state, "" once the process is gone."""
        try:
            with open(f"/proc/{self.pid}/stat", encoding="utf-8", errors="replace") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return ""

    def close(self) -> None:
        """Drop the pidfd."""
        try:
            os.close(self.pidfd)
        except OSError:
            pass


def _read(path: str) -> bytes:
    """A small /proc file's bytes (os-level: this runs thousands of times per scan)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _mnt_id_of_fd(path: str) -> int | None:
    """The mount id in the fdinfo file ``path``."""
    try:
        data = _read(path)
    except OSError:
        return None
    start = data.find(b"mnt_id:")
    if start < 0:
        return None
    try:
        return int(data[start + 7 :].split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def _mnt_id_of_link(path: str) -> int | None:
    """The mount id of what the /proc magic link ``path`` points to."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _mnt_id_of_fd(f"/proc/self/fdinfo/{fd}")
    finally:
        os.close(fd)


def _usage(pid: int, mount_id: int, devno: tuple[int, int]) -> str | None:
    """How process ``pid`` uses mount ``mount_id``, or None when it does not.

    Nothing here stats or opens a file through the process's links for reading: on a dead NFS server that
    would hang. Reading links, fdinfo and maps, and ``O_PATH`` opens, do not touch the filesystem.
    """
    base = f"/proc/{pid}"
    for link in ("root", "cwd", "exe"):
        if _mnt_id_of_link(f"{base}/{link}") == mount_id:
            return link
    try:
        fds = os.listdir(f"{base}/fd")
    except OSError:
        fds = []
    for fd in fds:
        try:
            target = os.readlink(f"{base}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and _mnt_id_of_fd(f"{base}/fdinfo/{fd}") == mount_id:
            return f"fd {fd} {target}"
    # memory maps: pick the ranges on our device from maps, confirm the mount through map_files
    wanted = f" {devno[0]:02x}:{devno[1]:02x} ".encode()
    try:
        with open(f"{base}/maps", "rb") as fh:
            maps = fh.read()
    except OSError:
        return None
    if wanted not in maps:
        return None
    for line in maps.decode(errors="replace").splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or f" {parts[3]} ".encode() != wanted:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if _mnt_id_of_link(f"{base}/map_files/{start:x}-{end:x}") == mount_id:
            return f"maps {parts[5].strip()}"
    return None


def _ancestors() -> set[int]:
    """This process and its ancestors: never signalled (the omha daemon must not kill itself)."""
    pids = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
                pid = next(int(line.split()[1]) for line in fh if line.startswith("PPid:"))
        except (OSError, StopIteration, ValueError):
            break
    pids.add(1)
    return pids


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return "?"


def find_users(mount_id: int, devno: tuple[int, int]) -> tuple[list[User], list[str]]:
    """Processes using mount ``mount_id`` that may be stopped, and descriptions of those that may not
    (this process and its ancestors). The caller closes the users' pidfds (:func:`close_all`)."""
    protected = _ancestors()
    users: list[User] = []
    spared: list[str] = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        if _usage(pid, mount_id, devno) is None:
            continue
        # a user: hold it by a pidfd, then look again, so that the pidfd cannot belong to a process that
        # reused the pid of one that exited in between
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:  # exited meanwhile
            continue
        how = _usage(pid, mount_id, devno)
        if how is None:
            os.close(pidfd)
            continue
        if pid in protected:
            os.close(pidfd)
            spared.append(f"pid {pid} ({_comm(pid)}: {how}; omha itself or its ancestor, not stopped)")
            continue
        users.append(User(pid, _comm(pid), how, pidfd))
    return users, spared


def close_all(users: list[User]) -> None:
    """Drop the pidfds of ``users``."""
    for user in users:
        user.close()


def _signal(users: list[User], signum: int) -> None:
    for user in users:
        try:
            signal.pidfd_send_signal(user.pidfd, signum)
        except ProcessLookupError:
            pass


def _wait_gone(users: list[User], timeout: float) -> list[User]:
    """Wait until every user has exited or ``timeout`` passes; return those still running."""
    deadline = time.monotonic() + timeout
    alive = list(users)
    while alive:
        poller = select.poll()
        for user in alive:
            poller.register(user.pidfd, select.POLLIN)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        ready = {fd for fd, _ in poller.poll(remaining * 1000)}
        alive = [u for u in alive if u.pidfd not in ready]
    return alive


def stop_users(users: list[User], grace: float, what: str) -> list[User]:
    """SIGTERM ``users``, give them ``grace`` seconds, SIGKILL the rest; return those that survive even that
    (stuck in uninterruptible I/O). ``what`` names the mount in the log."""
    if not users:
        return []
    log.warning("%s is busy: sending SIGTERM to %s", what, ", ".join(u.describe() for u in users))
    _signal(users, signal.SIGTERM)
    alive = _wait_gone(users, grace)
    if not alive:
        return []
    log.warning("%s: %s still running after %gs: sending SIGKILL", what, ", ".join(u.describe() for u in alive), grace)
    _signal(alive, signal.SIGKILL)
    return _wait_gone(alive, KILL_WAIT)
