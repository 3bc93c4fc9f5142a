"""A CM11A X10 interface emulated on a pseudo-terminal, speaking the interface's byte protocol.

Reusable beyond these tests (a multi-node fencing test can point several ``x10_cm11a`` devices' ``port`` at
one emulator and ask it what was switched)::

    with CM11AEmulator(two_way={"A1"}) as emu:       # start() returns the pty path; stop() on exit
        port = emu.port
        ...                                          # omha drives /dev/pts/N as if it were the CM11A
        emu.wait_for(lambda: emu.state("A1") == "off", timeout=10)
        assert Executed("A", (1,), "off") in emu.executed

What it does, as the real interface does (heyu's protocol.txt): checks each header:code frame and answers
its checksum, executes it on ``0x00`` and answers ``0x55``; a ``0x9B`` block sets its clock. It records the
bytes each side sent (:attr:`transcript`), the X10 commands it executed (:attr:`executed`, house / units /
function) and the state of the modules it switched (:meth:`state`; every module starts ``"on"``: the nodes
are powered). Anything that breaks the protocol is recorded in :attr:`errors`, which tests assert empty.

Trouble on demand:

- :meth:`queue_upload`: data "heard on the power line": the interface polls with ``0x5A`` (every
  ``poll_interval`` s, ignoring everything but ``0xC3``) and uploads it;
- :meth:`power_fail`: the interface asks for the time with ``0xA5`` (every ``poll_interval`` s, ignoring
  everything but a ``0x9B`` set-clock block);
- :meth:`interrupt`: either of those instead of the checksum (``at="checksum"``, the frame is lost) or
  instead of the ``0x55`` (``at="ready"``, the frame was executed) of the n-th frame received;
- :meth:`corrupt_checksum`: a wrong checksum for the n-th frame (the PC must send it again);
- ``answering=False``: an interface that never answers (unplugged, wrong port);
- modules in ``two_way`` answer an X10 Status Request with Status On/Off, uploaded through a poll.

Frames are counted from 0 in the order received, resent frames included.

In its own process: ``python -m omha_testing.cm11a_emulator`` prints the pty path, then one JSON
line per executed command (``{"house": "A", "units": [1], "function": "off"}``) until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

HOUSES = "ABCDEFGHIJKLMNOP"
CODES = (0x6, 0xE, 0x2, 0xA, 0x1, 0x9, 0x5, 0xD, 0x7, 0xF, 0x3, 0xB, 0x0, 0x8, 0x4, 0xC)
FUNCTIONS = (
    "all_units_off",
    "all_lights_on",
    "on",
    "off",
    "dim",
    "bright",
    "all_lights_off",
    "extended_code",
    "hail_request",
    "hail_ack",
    "preset_dim_1",
    "preset_dim_2",
    "extended_data",
    "status_on",
    "status_off",
    "status_request",
)
ACK, READY, POLL, PC_READY, CLOCK_REQUEST, SET_CLOCK = 0x00, 0x55, 0x5A, 0xC3, 0xA5, 0x9B
#: what another X10 controller "said" on the power line when no upload is given: A2, A ON
DEFAULT_UPLOAD = bytes([0b10, 0x6E, 0x62])

Event = Literal["poll", "power_fail"]


@dataclass(frozen=True)
class Executed:
    """One X10 command the interface put on the power line: ``Executed("A", (1,), "off")``."""

    house: str
    units: tuple[int, ...]
    function: str


@dataclass(frozen=True)
class ClockSet:
    """A set-clock block the interface accepted, decoded."""

    raw: bytes
    seconds: int
    minutes: int  # 0-119
    half_hours: int  # hours / 2
    year_day: int
    day_mask: int
    house: str
    flags: int

    @property
    def hour_minute(self) -> tuple[int, int]:
        """(hour, minute) of the day the PC sent."""
        return self.half_hours * 2 + self.minutes // 60, self.minutes % 60


class CM11AEmulator:
    """A CM11A on the master side of a pty pair; the slave path is the "serial port" (:attr:`port`).

    :param answering: False for an interface that reads everything and never answers.
    :param poll_interval: seconds between repeated ``0x5A`` polls and ``0xA5`` clock requests (real: ~1 s).
    :param ready_delay: seconds between the PC's ``0x00`` and the ``0x55`` (the power-line transmission).
    :param two_way: addresses (``"A1"``) of modules that answer status requests.
    :param initial: module states to start from, e.g. ``{"A1": "off"}``; others start ``"on"``.
    """

    def __init__(
        self,
        answering: bool = True,
        poll_interval: float = 1.0,
        ready_delay: float = 0.0,
        two_way: Iterable[str] = (),
        initial: dict[str, str] | None = None,
    ) -> None:
        self.answering = answering
        self.poll_interval = poll_interval
        self.ready_delay = ready_delay
        self.two_way = {a.upper() for a in two_way}
        self.modules: dict[str, str] = dict(initial or {})
        self.port = ""
        self.executed: list[Executed] = []
        self.clock_sets: list[ClockSet] = []
        self.errors: list[str] = []
        self.uploads_sent = 0
        #: called (in the emulator's thread) with every command executed
        self.on_execute: Callable[[Executed], None] | None = None
        self._transcript: list[tuple[str, bytearray]] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._master = self._slave = -1
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stop = False
        # protocol state
        self._state = "idle"
        self._header = 0
        self._frame: bytes = b""
        self._frame_corrupt = False
        self._frames_seen = 0
        self._clock_body = bytearray()
        self._next_emit = 0.0
        self._pending_uploads: list[bytes] = []
        self._pending_power_fail = False
        self._upload: bytes = b""
        self._selected: dict[str, list[int]] = {}
        self._after_function: set[str] = set()
        self._script: dict[int, tuple[str, str, bytes]] = {}  # frame -> (at, what, upload)
        self._at_ready: tuple[str, bytes] | None = None  # (what, upload) due instead of this frame's 0x55

    # -------------------------------------------------------------------------------------------------
    # lifecycle
    # -------------------------------------------------------------------------------------------------

    def start(self) -> str:
        """Create the pty pair (raw mode), start answering, and return the slave path to give omha."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as they are
        self.port = os.ttyname(self._slave)
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"cm11a-emulator {self.port}", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop answering and close the pty pair."""
        self._stop = True
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1

    def __enter__(self) -> CM11AEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -------------------------------------------------------------------------------------------------
    # scripting trouble
    # -------------------------------------------------------------------------------------------------

    def queue_upload(self, upload: bytes = DEFAULT_UPLOAD) -> None:
        """Power-line data arrived: poll the PC (as soon as no exchange is in progress) and upload
        ``upload`` (the function/address mask followed by up to 8 data bytes)."""
        with self._lock:
            self._pending_uploads.append(bytes(upload))
        self._wake()

    def power_fail(self) -> None:
        """The interface lost power: ask for the time (``0xA5``) as soon as no exchange is in progress."""
        with self._lock:
            self._pending_power_fail = True
        self._wake()

    def interrupt(
        self,
        frame: int,
        event: Event,
        at: Literal["checksum", "ready"] = "checksum",
        upload: bytes = DEFAULT_UPLOAD,
    ) -> None:
        """Instead of the checksum (or the ``0x55``) of the ``frame``-th frame, start polling or asking for the
        time."""
        with self._lock:
            self._script[frame] = (at, event, bytes(upload))

    def corrupt_checksum(self, *frames: int) -> None:
        """Answer a wrong checksum to each of these frames."""
        with self._lock:
            for f in frames:
                self._script[f] = ("checksum", "corrupt", b"")

    # -------------------------------------------------------------------------------------------------
    # what happened
    # -------------------------------------------------------------------------------------------------

    @property
    def transcript(self) -> list[tuple[str, bytes]]:
        """The conversation: ``("pc", b"\\x04\\x66")``, ``("cm11a", b"\\x6a")``, ... (runs merged)."""
        with self._lock:
            return [(who, bytes(data)) for who, data in self._transcript]

    def transcript_hex(self) -> list[str]:
        """The conversation as ``["pc 04 66", "cm11a 6a", ...]`` for readable assertions."""
        return [f"{who} {data.hex(' ')}" for who, data in self.transcript]

    def sent_by_pc(self) -> bytes:
        """Every byte the PC sent, in order."""
        return b"".join(data for who, data in self.transcript if who == "pc")

    def state(self, address: str) -> str:
        """The state of a module (``"on"`` unless something switched it off)."""
        with self._lock:
            return self.modules.get(address.upper(), "on")

    def history(self, address: str) -> list[str]:
        """The functions executed on one module, in order (``["off", "on"]`` after a reboot)."""
        house, unit = address[0].upper(), int(address[1:])
        with self._lock:
            return [e.function for e in self.executed if e.house == house and unit in e.units]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (re-checked whenever the emulator changes); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    # -------------------------------------------------------------------------------------------------
    # the interface
    # -------------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wake_w >= 0:
            os.write(self._wake_w, b"w")

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                self._start_pending()
                timeout = None
                if self._state in ("polling", "clock_request"):
                    timeout = max(self._next_emit - time.monotonic(), 0.0)
            ready, _, _ = select.select([self._master, self._wake_r], [], [], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if self._master in ready:
                try:
                    data = os.read(self._master, 256)
                except OSError:
                    data = b""
                with self._lock:
                    for byte in data:
                        self._record("pc", byte)
                        if self.answering:
                            self._byte(byte)
                    self._changed.notify_all()
            with self._lock:
                self._emit_due()

    def _start_pending(self) -> None:
        """Between exchanges, start a queued poll or clock request."""
        if self._state != "idle" or not self.answering:
            return
        if self._pending_power_fail:
            self._pending_power_fail = False
            self._enter("clock_request")
        elif self._pending_uploads:
            self._upload = self._pending_uploads.pop(0)
            self._enter("polling")

    def _enter(self, state: str) -> None:
        self._state = state
        self._next_emit = 0.0
        self._emit_due()

    def _emit_due(self) -> None:
        """Send (again) the poll or clock request when its interval has passed."""
        now = time.monotonic()
        if self._state in ("polling", "clock_request") and now >= self._next_emit:
            self._send(POLL if self._state == "polling" else CLOCK_REQUEST)
            self._next_emit = now + self.poll_interval

    def _send(self, *data: int) -> None:
        for byte in data:
            self._record("cm11a", byte)
        os.write(self._master, bytes(data))

    def _record(self, who: str, byte: int) -> None:
        if self._transcript and self._transcript[-1][0] == who:
            self._transcript[-1][1].append(byte)
        else:
            self._transcript.append((who, bytearray([byte])))

    def _idle(self) -> None:
        self._state = "idle"
        self._start_pending()

    def _byte(self, byte: int) -> None:
        state = self._state
        if state == "polling":
            if byte == PC_READY:
                # counted before the write: the PC may act on the upload before this thread runs again
                self.uploads_sent += 1
                self._send(len(self._upload), *self._upload)
                self._idle()
            return  # the interface ignores everything else while it polls
        if state == "clock_request":
            if byte == SET_CLOCK:
                self._clock_body = bytearray()
                self._state = "clock_body"
            return
        if state == "clock_body":
            self._clock_body.append(byte)
            if len(self._clock_body) == 6:
                self._send(sum(self._clock_body) & 0xFF)
                self._state = "clock_ack"
            return
        if state == "clock_ack":
            if byte == ACK:
                self._accept_clock(bytes(self._clock_body))
                self._send(READY)
                self._idle()
            elif byte == SET_CLOCK:
                self._clock_body = bytearray()
                self._state = "clock_body"
            else:
                self.errors.append(f"0x{byte:02X} instead of 0x00 after a set-clock checksum")
                self._idle()
            return
        if state == "code":
            self._got_frame(bytes([self._header, byte]))
            return
        if state == "ack" and byte == ACK:
            self._acked()
            return
        # in "ack", anything else is the PC sending a frame again (after a wrong checksum): a new header
        self._state = "idle"
        if byte == SET_CLOCK:
            self._clock_body = bytearray()
            self._state = "clock_body"
        elif byte & 0x04 and not byte & 0x01:
            self._header = byte
            self._state = "code"
        else:
            self.errors.append(f"unexpected byte 0x{byte:02X} from the PC while idle")

    def _got_frame(self, frame: bytes) -> None:
        index = self._frames_seen
        self._frames_seen += 1
        self._frame = frame
        self._frame_corrupt = False
        at, what, upload = self._script.pop(index, ("", "", b""))
        if at == "checksum" and what == "poll":
            self._pending_uploads.insert(0, upload)
            self._idle()
            return
        if at == "checksum" and what == "power_fail":
            self._pending_power_fail = True
            self._idle()
            return
        self._at_ready = (what, upload) if at == "ready" else None
        good = sum(frame) & 0xFF
        if what == "corrupt":
            self._frame_corrupt = True
            self._send(good ^ 0x10)
        else:
            self._send(good)
        self._state = "ack"

    def _acked(self) -> None:
        if self._frame_corrupt:
            self.errors.append(f"the PC acknowledged a wrong checksum of frame {self._frame.hex(' ')}")
            self._idle()
            return
        self._execute(self._frame)
        if self._at_ready is not None:
            what, upload = self._at_ready
            self._at_ready = None
            if what == "poll":
                self._pending_uploads.insert(0, upload)
            else:
                self._pending_power_fail = True
            self._idle()
            return
        if self.ready_delay:
            time.sleep(self.ready_delay)
        self._send(READY)
        self._idle()

    def _execute(self, frame: bytes) -> None:
        header, code = frame
        house = HOUSES[CODES.index(code >> 4)]
        if not header & 0x02:  # an address
            unit = CODES.index(code & 0xF) + 1
            if house in self._after_function:  # a new address after a function starts a new selection
                self._selected[house] = []
                self._after_function.discard(house)
            selected = self._selected.setdefault(house, [])
            if unit not in selected:
                selected.append(unit)
            return
        function = FUNCTIONS[code & 0xF]
        units = tuple(self._selected.get(house, []))
        self._after_function.add(house)
        self.executed.append(Executed(house, units, function))
        if self.on_execute is not None:
            self.on_execute(self.executed[-1])
        if function in ("on", "off"):
            for u in units:
                self.modules[f"{house}{u}"] = function
        elif function == "all_units_off":
            for u in range(1, 17):
                self.modules[f"{house}{u}"] = "off"
        elif function == "status_request":
            for u in units:
                if f"{house}{u}" in self.two_way:
                    status = 0xD if self.state(f"{house}{u}") == "on" else 0xE
                    addr = CODES[HOUSES.index(house)] << 4 | CODES[u - 1]
                    self._pending_uploads.append(bytes([0b10, addr, CODES[HOUSES.index(house)] << 4 | status]))

    def _accept_clock(self, body: bytes) -> None:
        sec, minutes, half_hours, yday_low, day_byte, last = body
        day_mask = day_byte & 0x7F
        if sec > 59 or minutes > 119 or half_hours > 11 or bin(day_mask).count("1") != 1:
            self.errors.append(f"impossible set-clock block {body.hex(' ')}")
        house = HOUSES[CODES.index(last >> 4)]
        clock = ClockSet(
            raw=body,
            seconds=sec,
            minutes=minutes,
            half_hours=half_hours,
            year_day=(day_byte >> 7) << 8 | yday_low,
            day_mask=day_mask,
            house=house,
            flags=last & 0x0F,
        )
        self.clock_sets.append(clock)


def main(argv: list[str] | None = None) -> int:
    """Run an emulator in its own process: print the pty path, then one JSON line per executed command,
    until SIGTERM or SIGINT. ``python -m omha_testing.cm11a_emulator [--two-way A1,B2]``."""
    parser = argparse.ArgumentParser(description="an emulated CM11A X10 interface on a pseudo-terminal")
    parser.add_argument("--two-way", default="", help="comma-separated addresses of two-way modules")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="seconds between repeated polls")
    args = parser.parse_args(argv)
    emu = CM11AEmulator(two_way=[a for a in args.two_way.split(",") if a], poll_interval=args.poll_interval)

    def report(cmd: Executed) -> None:
        print(json.dumps({"house": cmd.house, "units": list(cmd.units), "function": cmd.function}), flush=True)

    emu.on_execute = report
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(emu.start(), flush=True)
    try:
        stop.wait()
    finally:
        emu.stop()
    for error in emu.errors:
        print(f"protocol error: {error}", file=sys.stderr)
    return 1 if emu.errors else 0


if __name__ == "__main__":
    sys.exit(main())
