"""The run-level process of a campaign group: hold the group's lock, record the own life, run until stopped.

Started by the daemons as ``python worker.py LOGDIR GROUP``. It takes an exclusive, non-blocking ``flock`` on
``LOGDIR/GROUP.lock``: the kernel then guarantees that two live instances of the group cannot both hold it,
whatever kills them. It appends one JSON line per event to ``LOGDIR/GROUP.events``:

- ``start`` (lock acquired), ``stop`` (SIGTERM/SIGINT received, about to exit);
- ``overlap`` when the lock is held by another live instance, which is the violation the campaign looks for.

While it runs it rewrites ``LOGDIR/alive/GROUP.NODE.PID.TOKEN`` with its monotonic clock every ``TICK``
seconds: the last tick bounds when a SIGKILLed instance died. ``TOKEN`` (in the start event too) tells apart two
instances that got the same pid in a long campaign. Deliberately standalone (standard library only): it is
exec'd by ``/bin/sh`` on every start and must start fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from types import FrameType

TICK = 0.1


def record(path: str, **fields: object) -> None:
    """Append one event line (a single ``write`` on an ``O_APPEND`` file, so lines never interleave)."""
    fields.update(pid=os.getpid(), node=os.environ.get("OMHA_NODE", "?"), mono=time.monotonic(), wall=time.time())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(fields) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    logdir, group = argv[1], argv[2]
    events = os.path.join(logdir, f"{group}.events")
    lock = os.open(os.path.join(logdir, f"{group}.lock"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        record(events, ev="overlap", group=group)
        return 1
    token = f"{time.monotonic_ns()}"
    record(events, ev="start", group=group, token=token)

    def stop(signum: int, _frame: FrameType | None) -> None:
        record(events, ev="stop", group=group, signal=signum)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    alive = os.open(
        os.path.join(logdir, "alive", f"{group}.{os.environ.get('OMHA_NODE', '?')}.{os.getpid()}.{token}"),
        os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
        0o644,
    )
    while True:
        os.pwrite(alive, f"{time.monotonic():020.6f}".encode(), 0)
        time.sleep(TICK)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
