"""One conversation with a CM11A: sending commands and answering whatever the interface says on its own.

The interface may speak at any time: a ``0x5A`` poll (it holds data received from the power line and ignores
commands until the PC fetches it) or an ``0xA5`` clock request (it lost power). Either one can arrive where a
checksum or the ``0x55`` ready was expected. The session answers it, then sends the *whole* command again from
its first address: an interruption may have cost the interface the frame in progress, and a module that heard
other traffic meanwhile may have dropped its address. Resending is safe because X10 on and off are idempotent.

The checksum ``0x5A`` (the address of G1) is ambiguous with a poll, and ``0xA5`` (the address of D5, the
status request of house F) with a clock request: the session answers ``0x00`` as for a checksum; a real
checksum is followed by ``0x55``, a poll or clock request by its repetition (the interface ignores the
``0x00`` meanwhile), which is then served and the command sent again.

Every wait is bounded twice: by ``reply_timeout`` for each answer of the interface (else "not answering") and
by the deadline of the whole action; wrong checksums and interruptions are retried a bounded number of times.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Protocol

from omha_core.errors import FenceError
from omha_fence_x10 import cm11a_protocol as p
from omha_fence_x10.addresses import X10Address

#: how often a frame is sent again after a wrong checksum before giving up
MAX_RESENDS = 4
#: how many polls / clock requests may interrupt one command before giving up
MAX_INTERRUPTIONS = 8


class Port(Protocol):
    """What the session needs of a serial port (pyserial's ``Serial`` has it)."""

    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


class _Interrupted(Exception):
    """The interface spoke on its own during a command; the command starts over."""


class CM11ASession:
    """Send X10 commands through a CM11A on an open port.

    :param port: the open serial port.
    :param label: names the device in messages (``x10_cm11a 'plug' on /dev/ttyS0``).
    :param reply_timeout: seconds to wait for each answer of the interface.
    :param deadline: ``time.monotonic()`` value after which the whole action gives up.
    :param clock: local time for the set-clock answer (tests pass a fixed one).
    """

    def __init__(
        self,
        port: Port,
        label: str,
        reply_timeout: float,
        deadline: float,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.port = port
        self.label = label
        self.reply_timeout = reply_timeout
        self.deadline = deadline
        self.clock = clock
        #: what the interface uploaded (power-line traffic, status replies), in order
        self.uploads: list[p.UploadItem] = []
        #: notable events, for the result message: "served a poll", "set the clock", "resent ..."
        self.notes: list[str] = []

    # -------------------------------------------------------------------------------------------------
    # commands
    # -------------------------------------------------------------------------------------------------

    def command(self, addresses: list[X10Address], function: str) -> None:
        """Address every module of ``addresses`` (one house code), then send ``function`` to that house."""
        house = addresses[0].house
        if any(a.house != house for a in addresses):
            raise ValueError("one command addresses modules of one house code")
        frames = [p.address_frame(a) for a in addresses] + [p.function_frame(house, function)]
        for _ in range(MAX_INTERRUPTIONS + 1):
            try:
                for frame in frames:
                    self._frame(frame)
                return
            except _Interrupted:
                continue
        raise FenceError(
            f"{self.label}: the interface interrupted '{function}' for {', '.join(map(str, addresses))} "
            f"{MAX_INTERRUPTIONS + 1} times in a row (polls or clock requests); giving up"
        )

    def wait_status(self, addr: X10Address, wait: float, since: int = 0) -> str | None:
        """After a status request: wait up to ``wait`` s for the module's Status On/Off reply (via a poll).

        :param since: index in :attr:`uploads` from which a reply counts (their length before the request).
        :return: ``"on"``, ``"off"``, or None when no reply came (one-way modules never answer).
        """
        until = min(time.monotonic() + wait, self.deadline)
        while True:
            state = _status_in(self.uploads[since:], addr)
            if state is not None:
                return state
            remaining = until - time.monotonic()
            if remaining <= 0:
                return None
            byte = self._read(remaining)
            if byte is None:
                return None
            if byte in (p.POLL, p.CLOCK_REQUEST):
                self._serve(byte)
            # anything else is a stray byte of an earlier exchange: ignore it

    # -------------------------------------------------------------------------------------------------
    # one frame
    # -------------------------------------------------------------------------------------------------

    def _frame(self, frame: bytes) -> None:
        """Send one header:code frame until the interface confirms it with ``0x55``."""
        expected = p.checksum(frame)
        what = p.describe(frame)
        for attempt in range(MAX_RESENDS + 1):
            self.port.write(frame)
            got = self._need(f"the checksum 0x{expected:02X} of {what} [{frame.hex(' ')}]")
            if got == expected:
                self.port.write(bytes([p.ACK]))
                after = self._need(f"0x55 (ready) after {what}")
                if after == p.READY:
                    return
                self._serve_or_restart(after, f"0x55 after {what}")
            elif got in (p.POLL, p.CLOCK_REQUEST):
                self._serve(got)
                raise _Interrupted
            elif attempt < MAX_RESENDS:
                self.notes.append(f"resent {what}: checksum 0x{got:02X}, expected 0x{expected:02X}")
        raise FenceError(
            f"{self.label}: the interface answered a wrong checksum to {what} {MAX_RESENDS + 1} times "
            f"(sent {frame.hex(' ')}, expected 0x{expected:02X}, last got 0x{got:02X}): check the cable "
            "and that the port speaks 4800 baud"
        )

    def _serve_or_restart(self, byte: int, expected: str) -> None:
        """Handle a byte that came instead of the ``0x55`` ready: serve a poll or clock request, restart."""
        if byte in (p.POLL, p.CLOCK_REQUEST):
            self._serve(byte)
        else:
            self.notes.append(f"unexpected 0x{byte:02X} instead of {expected}")
        raise _Interrupted

    # -------------------------------------------------------------------------------------------------
    # what the interface says on its own
    # -------------------------------------------------------------------------------------------------

    def _serve(self, byte: int) -> None:
        if byte == p.POLL:
            self._upload()
        else:
            self._set_clock()

    def _upload(self) -> None:
        """Answer a poll with ``0xC3`` and read the interface's buffer."""
        self.port.write(bytes([p.PC_READY]))
        size = self._need("the upload size after 0xC3")
        while size == p.POLL:  # a poll repeated before the interface saw the 0xC3
            size = self._need("the upload size after 0xC3")
        if not 1 <= size <= p.MAX_UPLOAD:
            self.notes.append(f"ignored an upload of impossible size {size}")
            return
        body = b"".join(bytes([self._need(f"upload byte {i + 1} of {size}")]) for i in range(size))
        items = p.parse_upload(body[0], body[1:])
        self.uploads.extend(items)
        self.notes.append("served a poll")

    def _set_clock(self) -> None:
        """Answer a clock request (power failure) with the set-clock block, as the protocol asks."""
        for _ in range(MAX_RESENDS + 1):
            block = p.set_clock_block(self.clock())
            expected = p.checksum(block[1:])
            self.port.write(block)
            got = self._need(f"the checksum 0x{expected:02X} of the set-clock block")
            if got != expected:
                continue  # a repeated 0xA5 or a line error: send the block again
            self.port.write(bytes([p.ACK]))
            if self._need("0x55 (ready) after setting the clock") == p.READY:
                self.notes.append("set the interface's clock after its power failure")
                return
        raise FenceError(f"{self.label}: the interface asked for the time but never accepted it")

    # -------------------------------------------------------------------------------------------------
    # reading
    # -------------------------------------------------------------------------------------------------

    def _need(self, what: str) -> int:
        """Read one byte or raise: the interface did not answer in time."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise FenceError(f"{self.label}: gave up: the action's timeout passed while waiting for {what}")
        wait = min(self.reply_timeout, remaining)
        byte = self._read(wait)
        if byte is None:
            raise FenceError(
                f"{self.label}: the interface is not answering: nothing within {wait:.1f} s while waiting "
                f"for {what}; is the CM11A plugged in, powered and on this port?"
            )
        return byte

    def _read(self, wait: float) -> int | None:
        """One byte, or None when nothing came within ``wait`` seconds."""
        self.port.timeout = max(wait, 0.0)
        data = self.port.read(1)
        return data[0] if data else None


def _status_in(items: list[p.UploadItem], addr: X10Address) -> str | None:
    """The state ``addr`` reported in ``items``: a Status On/Off for its house, after its address (if any)."""
    unit: int | None = None
    for item in items:
        if item.house != addr.house:
            continue
        if item.unit is not None:
            unit = item.unit
        elif item.function in ("status_on", "status_off") and unit in (None, addr.unit):
            return "on" if item.function == "status_on" else "off"
    return None
