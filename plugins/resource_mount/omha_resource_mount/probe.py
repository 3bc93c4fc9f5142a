"""The write probe: create, write, fsync and remove a small file on the mount, in a child process.

A hung NFS server makes every system call on the mount block, often uninterruptibly. The probe therefore runs
in a separate, freshly executed process (it inherits none of the agent's signal handlers) that the agent waits
for with a deadline and abandons when the deadline passes: the agent itself never touches the mounted files.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

#: the probe child: its exit status 0 means written; otherwise stderr says what failed
_CHILD = """
import os, sys
path = sys.argv[1]
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, b"omha write probe\\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
except OSError as exc:
    sys.stderr.write(exc.strerror or str(exc))
    sys.exit(1)
"""

#: probe children that outlived their deadline; reaped later so they do not stay zombies
_abandoned: list[subprocess.Popen[bytes]] = []


def probe_name() -> str:
    """The probe file's name in the mount's top directory; per node, so nodes never collide on shared
    storage."""
    return f".omha-probe.{socket.gethostname()}"


def _reap() -> None:
    _abandoned[:] = [p for p in _abandoned if p.poll() is None]


def write_probe(directory: str, timeout: float) -> str | None:
    """Write a probe file into ``directory`` within ``timeout`` seconds.

    :return: None when the write succeeded, else why not ("timed out after 5s", "Read-only file system").
    """
    _reap()
    path = os.path.join(directory, probe_name())
    child = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _CHILD, path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        try:
            child.communicate(timeout=0.5)
        except subprocess.TimeoutExpired:  # stuck in uninterruptible I/O: leave it, reap it later
            _abandoned.append(child)
        return f"write probe of {path} timed out after {timeout:g}s (server not responding?)"
    if child.returncode != 0:
        reason = err.decode(errors="replace").strip() or f"exit status {child.returncode}"
        return f"write probe of {path} failed: {reason}"
    return None
