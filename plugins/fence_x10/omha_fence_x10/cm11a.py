"""Device kind ``x10_cm11a``: appliance modules switched over the power line by a CM11A on a serial port.

Options: ``port`` (serial device), ``repeat`` (times each command is sent, default 3), ``timeout`` (seconds
for the whole action, default 20), ``reply_timeout`` (seconds to wait for each answer of the interface,
default 3), ``verify`` (after switching, ask each module for its state with an X10 Status Request; only
two-way modules answer; default false).

``status`` sends a Status Request and waits for the module's Status On/Off: it works with two-way modules and
reports "no answer" for plain appliance modules, which cannot talk back.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import FenceError
from omha_core.fence_devices import FenceResult
from omha_fence_x10.addresses import BadAddress, X10Address, parse_targets
from omha_fence_x10.cm11a_session import CM11ASession
from omha_fence_x10.device import COMMON_SCHEMA, X10Device, by_house
from omha_fence_x10.serial_port import open_port

BAUD = 4800


class CM11A(X10Device):
    """An X10 CM11A computer interface: two-way serial protocol, one-way (or two-way) modules."""

    kind: ClassVar[str] = "x10_cm11a"
    unverified_reason: ClassVar[str] = "appliance modules cannot report their state"
    schema: ClassVar[dict[Any, Any]] = {
        **COMMON_SCHEMA,
        vol.Optional("reply_timeout", default=3.0): cv.positive_float,
        vol.Optional("verify", default=False): cv.boolean,
    }

    def _send(self, addresses: list[X10Address], on: bool, deadline: float) -> FenceResult:
        function = "on" if on else "off"
        with open_port(self.port, BAUD, self.label, deadline) as port:
            port.reset_input_buffer()  # stale bytes from before we opened are answers to nobody
            session = CM11ASession(port, self.label, self.options["reply_timeout"], deadline)
            for _ in range(self.repeat):
                for group in by_house(addresses):
                    session.command(group, function)
            message = self._sent(addresses, on, session.notes)
            if not self.options["verify"]:
                return FenceResult(ok=True, verified=False, message=f"{message}; unverified: {self.unverified_reason}")
            states = self._query(session, addresses)
        unknown = [str(a) for a, s in states.items() if s is None]
        wrong = [str(a) for a, s in states.items() if s is not None and s != function]
        if wrong:
            return FenceResult(
                ok=False,
                verified=True,
                state="on" if "on" in states.values() else "off",
                message=f"{message}, but {', '.join(wrong)} still reported {'off' if on else 'on'}",
            )
        if unknown:
            return FenceResult(
                ok=True,
                verified=False,
                message=f"{message}; unverified: no status reply from {', '.join(unknown)} (one-way module?)",
            )
        return FenceResult(ok=True, verified=True, state=function, message=f"{message}; modules report {function}")

    def status(self, targets: list[str]) -> FenceResult:
        """Ask each target's module for its state (two-way modules only)."""
        try:
            addresses = parse_targets(targets)
        except BadAddress as exc:
            return FenceResult(ok=False, message=f"{self.label}: {exc}")
        try:
            deadline = time.monotonic() + self.timeout
            with open_port(self.port, BAUD, self.label, deadline) as port:
                port.reset_input_buffer()
                states = self._query(CM11ASession(port, self.label, self.options["reply_timeout"], deadline), addresses)
        except FenceError as exc:
            return FenceResult(ok=False, message=str(exc))
        unknown = [str(a) for a, s in states.items() if s is None]
        if unknown:
            return FenceResult(
                ok=False,
                message=f"{self.label}: no status reply from {', '.join(unknown)}: "
                f"{self.unverified_reason} unless they are two-way modules",
            )
        state = "on" if "on" in states.values() else "off"
        listed = ", ".join(f"{a} {s}" for a, s in states.items())
        return FenceResult(ok=True, verified=True, state=state, message=f"{self.label}: {listed}")

    def _query(self, session: CM11ASession, addresses: list[X10Address]) -> dict[X10Address, str | None]:
        """Status Request each address in turn and collect the replies (None: no reply)."""
        states: dict[X10Address, str | None] = {}
        for addr in addresses:
            mark = len(session.uploads)
            session.command([addr], "status_request")
            states[addr] = session.wait_status(addr, self.options["reply_timeout"], since=mark)
        return states
