"""Opening the serial port with errors an operator can act on; pyserial is imported here, lazily.

Both X10 interfaces hang off a serial port; what goes wrong there is nearly always one of: the device path
does not exist (unplugged USB adapter, typo), the daemon's user may not open it (not in group ``dialout``),
another program holds it, or it is not a serial port at all.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from omha_core.errors import FenceError

if TYPE_CHECKING:
    import serial

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(port: str) -> threading.Lock:
    """One lock per port (by real path) in this process: the daemon may fence two nodes at once."""
    key = os.path.realpath(port)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


@contextmanager
def open_port(port: str, baudrate: int, label: str, deadline: float) -> Iterator[serial.Serial]:
    """Hold ``port`` for one action: wait (until ``deadline``, a ``time.monotonic()`` value) for other
    actions of this process on the same port, then open it exclusively (8N1), and close it afterwards.

    Two actions on one port never interleave their bytes or line changes: within the process they take
    turns, and the exclusive open keeps other processes out (they get "busy").

    :param label: who is asking, for messages (``x10_cm11a 'plug' on /dev/ttyUSB0``).
    :raises FenceError: naming the port and what to check.
    """
    lock = _lock_for(port)
    if not lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
        raise FenceError(f"{label}: serial port {port} stayed busy with another fence action until the timeout")
    try:
        handle = _open(port, baudrate, label)
        try:
            yield handle
        finally:
            handle.close()
    finally:
        lock.release()


def _open(port: str, baudrate: int, label: str) -> serial.Serial:
    """Open ``port`` exclusively, 8N1, reads non-blocking until a read sets its timeout."""
    import serial  # lazy: `omha --help` must not pay for pyserial

    try:
        return serial.Serial(
            port,
            baudrate=baudrate,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            timeout=0,
            exclusive=True,
        )
    except serial.SerialException as exc:
        raise FenceError(f"{label}: {explain_open_error(port, exc)}") from None
    except (OSError, ValueError) as exc:
        raise FenceError(f"{label}: cannot open serial port {port}: {exc}") from None


def explain_open_error(port: str, exc: OSError) -> str:
    """Turn pyserial's open error into a sentence that says what to check."""
    code = exc.errno
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"no such serial port {port} (check the device path and that the adapter is plugged in)"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied opening serial port {port} (is omha's user in the port's group, e.g. dialout?)"
    if code in (errno.EAGAIN, errno.EBUSY):
        return f"serial port {port} is busy: another program holds it"
    if code == errno.EISDIR:
        return f"{port} is a directory, not a serial port"
    if code is None and "configure" in str(exc):
        return f"{port} is not a serial port (it does not accept terminal settings)"
    return f"cannot open serial port {port}: {exc}"
