"""What both X10 device kinds share: options, node map validation, target parsing and result wording.

X10 is "fire and forget": a command goes out several times (``repeat``) because a power-line or radio frame
can be lost, and an appliance module never says whether it heard. So a successful ``off`` is reported as
``ok=True, verified=False`` unless the state was really read back (CM11A with two-way modules and
``verify = true``), which tells the fencing orchestration that the node was switched, not seen off.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import FenceError
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_fence_x10.addresses import BadAddress, X10Address, parse_targets, x10_targets

#: options every X10 kind takes (``timeout`` and ``reboot_pause`` come from the core's device schema)
COMMON_SCHEMA: dict[Any, Any] = {
    vol.Required("port"): cv.path,
    vol.Optional("repeat", default=3): cv.positive_int,
    # node map values are X10 addresses: checked when omha.toml is loaded, not when a node must be fenced
    vol.Required("nodes"): {cv.identifier: x10_targets},
}


class X10Device(FenceDevice):
    """Base of the X10 kinds: parses targets, repeats commands, turns errors into failed results."""

    kind: ClassVar[str] = "x10"
    #: how the kind can (not) read a module's state, for result messages
    unverified_reason: ClassVar[str] = "X10 modules cannot report their state"

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        own = {k: v for k, v in self.schema.items() if str(k) != "nodes"}
        own[vol.Optional("timeout", default=20.0)] = cv.positive_float
        own[vol.Optional("reboot_pause", default=1.0)] = cv.non_negative_float
        super().__init__(name, vol.Schema(own, extra=vol.ALLOW_EXTRA)(dict(options)))
        self.port: str = self.options["port"]
        self.repeat: int = self.options["repeat"]
        self.timeout: float = self.options["timeout"]

    @property
    def label(self) -> str:
        """How messages name this device: ``x10_cm11a 'plug' on /dev/ttyUSB0``."""
        return f"{self.kind} {self.name!r} on {self.port}"

    def off(self, targets: list[str]) -> FenceResult:
        """Switch every target's module off, ``repeat`` times."""
        return self._switch(targets, on=False)

    def on(self, targets: list[str]) -> FenceResult:
        """Switch every target's module on, ``repeat`` times."""
        return self._switch(targets, on=True)

    def _switch(self, targets: list[str], on: bool) -> FenceResult:
        try:
            addresses = parse_targets(targets)
        except BadAddress as exc:
            return FenceResult(ok=False, message=f"{self.label}: {exc}")
        try:
            return self._send(addresses, on, deadline=time.monotonic() + self.timeout)
        except FenceError as exc:
            return FenceResult(ok=False, message=str(exc))

    def _send(self, addresses: list[X10Address], on: bool, deadline: float) -> FenceResult:
        """Send the command to every address; raise :class:`FenceError` on failure."""
        raise NotImplementedError

    def _sent(self, addresses: list[X10Address], on: bool, notes: list[str] | None = None) -> str:
        """The message of a successful, unverified switch."""
        what = "ON" if on else "OFF"
        times = "once" if self.repeat == 1 else f"{self.repeat} times"
        extra = f" ({'; '.join(dict.fromkeys(notes))})" if notes else ""
        return f"{self.label}: sent {what} to {', '.join(map(str, addresses))} {times}{extra}"


def by_house(addresses: list[X10Address]) -> list[list[X10Address]]:
    """Group addresses by house code, in first-seen order: one X10 command per house."""
    groups: dict[str, list[X10Address]] = {}
    for a in addresses:
        groups.setdefault(a.house, []).append(a)
    return list(groups.values())
