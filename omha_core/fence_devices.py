"""The fence-device contract: what a plugin implements to add a kind of fence device.

``omha.toml`` lists devices under ``[[fencing.devices]]``; each names a ``kind`` that a plugin registered
through ``omha_fence_devices``. The core builds one :class:`FenceDevice` per configured device and calls
:meth:`FenceDevice.fence` with the node's targets (outlets, plugs, X10 addresses) from the device's ``nodes``
map. Devices are tried in configured order until one returns a :class:`FenceResult` with ``ok`` true.

Credentials: options whose name ends in ``password``, ``community`` or ``secret`` are redacted everywhere the
core prints options; a device must never put them in a message either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import voluptuous as vol

Action = Literal["off", "on", "reboot", "status"]
ACTIONS: tuple[str, ...] = ("off", "on", "reboot", "status")


@dataclass(frozen=True)
class FenceResult:
    """The outcome of one device action.

    :param ok: the action was carried out (and verified, where ``verified``).
    :param verified: the final state was read back from the device; False for write-only devices (X10 CM17A).
    :param message: a human reason, without secrets.
    :param state: for ``status``: ``"on"``, ``"off"`` or ``None`` when unknown.
    """

    ok: bool
    verified: bool = False
    message: str = ""
    state: str | None = None


class FenceDevice:
    """Base class of fence devices; subclass it and return the class from ``omha_fence_devices``.

    :param name: the device's ``name`` in ``omha.toml``.
    :param options: the device's options, validated against :attr:`schema` (``name``, ``kind``, ``nodes``
        removed).
    """

    #: voluptuous schema (a dict of keys) for the kind's own options, merged into the device entry schema
    schema: ClassVar[dict[Any, Any]] = {}
    #: True when the device can read the outlet state back (``status``)
    can_verify: ClassVar[bool] = False

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = options
        #: the node being fenced during a :meth:`fence` call ("" when called directly)
        self.current_node = ""

    def off(self, targets: list[str]) -> FenceResult:
        """Switch every target off. ``ok`` only when done (and read back, if :attr:`can_verify`)."""
        raise NotImplementedError

    def on(self, targets: list[str]) -> FenceResult:
        """Switch every target on."""
        raise NotImplementedError

    def status(self, targets: list[str]) -> FenceResult:
        """Read the state: ``state="off"`` only when every target is off, ``"on"`` when any is on."""
        return FenceResult(ok=False, message=f"{self.name}: status is not supported by this device")

    def reboot(self, targets: list[str]) -> FenceResult:
        """Power-cycle: off, verify, pause, on. Devices with a native reboot may override."""
        res = self.off(targets)
        if not res.ok:
            return res
        time.sleep(float(self.options.get("reboot_pause", 1.0)))
        on = self.on(targets)
        # the node is fenced once it was off; a failed power-on is reported but does not undo the fence
        msg = res.message if on.ok else f"{res.message}; power on afterwards failed: {on.message}"
        return FenceResult(ok=True, verified=res.verified, message=msg)

    def fence(self, action: str, targets: list[str], node: str = "") -> FenceResult:
        """Dispatch ``action`` (off / on / reboot / status) to the method of that name, for ``node``."""
        self.current_node = node
        if action not in ACTIONS:
            return FenceResult(ok=False, message=f"{self.name}: unknown action {action!r}")
        method = getattr(self, action)
        result: FenceResult = method(targets)
        return result


def device_schema(kind_schema: Mapping[Any, Any]) -> vol.Schema:
    """The schema of one ``[[fencing.devices]]`` entry: the common keys plus the kind's own."""
    from omha_core import config_validation as cv

    base: dict[Any, Any] = {
        vol.Required("name"): cv.identifier,
        vol.Required("kind"): cv.identifier,
        vol.Required("nodes"): {cv.identifier: cv.string_or_list},
        vol.Optional("action"): vol.In(["off", "reboot"], msg="expected 'off' or 'reboot'"),
        vol.Optional("timeout", default=20.0): cv.positive_float,
        vol.Optional("reboot_pause", default=1.0): cv.non_negative_float,
    }
    base.update(kind_schema)
    return vol.Schema(base)
