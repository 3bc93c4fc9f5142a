"""Device kind ``x10_cm17a``: the FireCracker RF transmitter, bit-banged on a serial port's DTR and RTS lines.

Options: ``port`` (serial device), ``repeat`` (times each frame is sent, default 3), ``timeout`` (how long an
action may wait for another fence action on the same port; a one-way transmitter never waits for an
answer: sending takes about 0.35 s + 0.43 s per frame).

The lines are driven natively through pyserial rather than by running bottlerocket's ``br``: see the
plugin's README for why. Line states: both high is standby (and powers the device), RTS alone sends a 1,
DTR alone a 0, and every bit returns to standby; both low would reset it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from omha_core.errors import FenceError
from omha_core.fence_devices import FenceResult
from omha_fence_x10 import cm17a_frames
from omha_fence_x10.addresses import X10Address
from omha_fence_x10.device import COMMON_SCHEMA, X10Device
from omha_fence_x10.serial_port import open_port

if TYPE_CHECKING:
    import serial

#: standby before the first frame: the FireCracker takes its power from DTR and RTS
POWER_UP = 0.35
#: how long each line state is held (the device needs at least 0.5 ms)
BIT_TIME = 0.001
#: standby after each frame while the device transmits it by radio
FRAME_GAP = 0.35
#: the baud rate does not matter (no data is sent), but opening the port needs one
BAUD = 9600


class CM17A(X10Device):
    """An X10 CM17A "FireCracker": one-way, so results are never verified and ``status`` is unsupported."""

    kind: ClassVar[str] = "x10_cm17a"
    unverified_reason: ClassVar[str] = "the CM17A is a one-way radio transmitter"
    schema: ClassVar[dict[Any, Any]] = dict(COMMON_SCHEMA)

    def _send(self, addresses: list[X10Address], on: bool, deadline: float) -> FenceResult:
        frames = [cm17a_frames.frame(a, on) for a in addresses]
        with open_port(self.port, BAUD, self.label, deadline) as port:
            lines = FireCrackerLines(port, self.label)
            lines.standby()
            time.sleep(POWER_UP)
            for _ in range(self.repeat):
                for f in frames:
                    lines.send(f)
                    time.sleep(FRAME_GAP)
        message = self._sent(addresses, on)
        return FenceResult(ok=True, verified=False, message=f"{message}; unverified: {self.unverified_reason}")

    def status(self, targets: list[str]) -> FenceResult:
        """Not possible: the FireCracker only transmits."""
        return FenceResult(
            ok=False, message=f"{self.label}: status is not supported: {self.unverified_reason} (no read-back)"
        )


class FireCrackerLines:
    """Drives DTR and RTS of an open port to clock frames into a FireCracker."""

    def __init__(self, port: serial.Serial, label: str) -> None:
        self.port = port
        self.label = label

    def standby(self) -> None:
        """Both lines high: the device idles (and draws its power)."""
        self._set(dtr=True, rts=True)

    def send(self, frame: bytes) -> None:
        """Clock ``frame`` out, most significant bit first, returning to standby after every bit."""
        for bit in cm17a_frames.bits(frame):
            line = "dtr" if bit else "rts"  # dropping DTR leaves RTS alone: a 1; dropping RTS: a 0
            self._set(**{line: False})
            time.sleep(BIT_TIME)
            self._set(**{line: True})
            time.sleep(BIT_TIME)

    def _set(self, dtr: bool | None = None, rts: bool | None = None) -> None:
        try:
            if dtr is not None:
                self.port.dtr = dtr
            if rts is not None:
                self.port.rts = rts
        except OSError as exc:
            raise FenceError(
                f"{self.label}: cannot drive the DTR/RTS lines: {exc.strerror or exc} (a CM17A needs a real "
                "serial port with modem control lines; a pseudo-terminal or some USB adapters have none)"
            ) from None
