"""The fence-device contract: what a plugin implements to add a kind of fence device.

``omha.toml`` lists devices under ``[[fencing.devices]]``; each names a ``kind`` that a plugin registered
through ``omha_fence_devices``. The core builds one :class:`FenceDevice` per configured device and calls
:meth:`FenceDevice.fence` with the node's targets (outlets, plugs, X10 addresses) from the device's ``nodes``
map. Devices are tried in configured order until one returns a :class:`FenceResult` with ``ok`` true.

Rules every kind gets from this base class, so that no plugin has to get them right on its own:

- **Several targets** (a node with two power supplies, ``nodes = { n3 = ["3", "4"] }``): ``reboot`` is a power
  cycle of the whole node, never one target after the other: ``off`` on every target (all must succeed, read
  back where the device can), ``reboot_pause`` seconds, then ``on`` on every target. A kind's own
  :meth:`FenceDevice.reboot` is only ever called with a single target.
- **Time**: :meth:`FenceDevice.max_duration` says how long one call may take. The core waits that long (plus
  a small margin); a call still running then counts as failed, and the core waits for it to end before it
  tries another device or retries, so two calls never switch the same node at once.

Credentials: options whose name ends in ``password``, ``community`` or ``secret`` are redacted everywhere the
core prints options; a device must never put them in a message either.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import voluptuous as vol

from omha_core.errors import FenceError

Action = Literal["off", "on", "reboot", "status"]
ACTIONS: tuple[str, ...] = ("off", "on", "reboot", "status")
#: what ``omha fence NODE --action ...`` accepts: the fence actions, and ``list`` (every target of a device)
OPERATOR_ACTIONS: tuple[str, ...] = (*ACTIONS, "list")
#: default ``timeout`` of a device (seconds for one off, on or status)
DEFAULT_TIMEOUT = 20.0


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


@dataclass(frozen=True)
class Target:
    """One target a device knows (``omha fence NODE --action list``).

    :param id: what a ``nodes`` map names it by (outlet number, plug name).
    :param name: the device's own label for it ("" when it has none).
    :param state: ``"on"``, ``"off"``, or None when the device does not say.
    """

    id: str
    name: str = ""
    state: str | None = None


class UnsupportedAction(FenceError):
    """The device kind cannot do this action at all (as opposed to trying and failing)."""


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

    # -- what a kind implements -------------------------------------------------------------------------

    def off(self, targets: list[str]) -> FenceResult:
        """Switch every target off. ``ok`` only when done (and read back, if :attr:`can_verify`)."""
        raise NotImplementedError

    def on(self, targets: list[str]) -> FenceResult:
        """Switch every target on."""
        raise NotImplementedError

    def status(self, targets: list[str]) -> FenceResult:
        """Read the state: ``state="off"`` only when every target is off, ``"on"`` when any is on."""
        return FenceResult(ok=False, message=f"{self.name}: status is not supported by this kind of device")

    def reboot(self, targets: list[str]) -> FenceResult:
        """Reboot one target (the core power-cycles several targets itself, see :meth:`power_cycle`).

        The default is :meth:`power_cycle`; a kind with a native, verified reboot of one outlet may override.
        """
        return self.power_cycle(targets)

    def list_targets(self) -> list[Target]:
        """Every target the device has, with its label and state where known (``omha fence --action list``).

        Kinds that cannot enumerate their targets leave this alone. For kinds written before this method
        existed, a ``list_outlets()`` method returning objects with ``number``, ``name`` and ``state`` is used.

        :raises UnsupportedAction: the kind cannot list its targets.
        :raises FenceError: the device could not be read (the message names it, never a credential).
        """
        lister = getattr(self, "list_outlets", None)
        if not callable(lister):
            raise UnsupportedAction(f"{self.name}: listing targets is not supported by this kind of device")
        return [
            Target(str(getattr(o, "number", o)), str(getattr(o, "name", "") or ""), getattr(o, "state", None))
            for o in lister()
        ]

    def max_duration(self, action: str, targets: list[str]) -> float:
        """The longest one :meth:`fence` call for ``action`` on ``targets`` (or ``list``) may take, in seconds.

        The default trusts the device to finish one off, on or status of all its targets within its
        ``timeout`` option; a power cycle is an off, ``reboot_pause`` and an on. Override it when the kind
        works target by target, retries on its own, or has a native reboot that takes longer.
        """
        if action == "reboot":
            return self.max_duration("off", targets) + self.reboot_pause + self.max_duration("on", targets)
        return self.option_float("timeout", DEFAULT_TIMEOUT)

    # -- what the core calls ----------------------------------------------------------------------------

    def supports(self, action: str) -> bool:
        """Whether the kind can do ``action`` at all (``off``, ``on`` and ``reboot`` always).

        ``status`` and ``list`` count as supported when the kind implements them (it may still fail to).
        """
        if action in ("off", "on", "reboot"):
            return True
        if action == "status":
            return type(self).status is not FenceDevice.status
        if action == "list":
            return type(self).list_targets is not FenceDevice.list_targets or callable(
                getattr(self, "list_outlets", None)
            )
        return False

    def fence(self, action: str, targets: list[str], node: str = "") -> FenceResult:
        """Do ``action`` (off / on / reboot / status) on ``node``'s ``targets``.

        A ``reboot`` of several targets is always :meth:`power_cycle` (all off, pause, all on), whatever the
        kind's own :meth:`reboot` does: a node with two supplies must lose both at once.
        """
        self.current_node = node
        if action not in ACTIONS:
            return FenceResult(ok=False, message=f"{self.name}: unknown action {action!r}")
        if action == "reboot" and len(targets) > 1:
            return self.power_cycle(targets)
        method = getattr(self, action)
        result: FenceResult = method(targets)
        return result

    def power_cycle(self, targets: list[str]) -> FenceResult:
        """Off on every target (all must succeed, and be read back where the device can), pause, on on every
        target. The node is fenced once it was off: a failed power-on is reported but does not undo that."""
        off = self.off(targets)
        if not off.ok:
            return off
        time.sleep(self.reboot_pause)
        on = self.on(targets)
        if on.ok:
            return FenceResult(ok=True, verified=off.verified, state="on", message=f"{off.message}; then on again")
        return FenceResult(
            ok=True,
            verified=off.verified,
            state="off",
            message=f"{off.message}; power on afterwards failed: {on.message}",
        )

    # -- helpers for kinds ------------------------------------------------------------------------------

    @property
    def reboot_pause(self) -> float:
        """Seconds between off and on in a power cycle (the ``reboot_pause`` option)."""
        return self.option_float("reboot_pause", 1.0)

    def option_float(self, key: str, default: float) -> float:
        """A numeric option, ``default`` when absent."""
        value = self.options.get(key)
        return default if value is None else float(value)


def device_schema(kind_schema: Mapping[Any, Any]) -> vol.Schema:
    """The schema of one ``[[fencing.devices]]`` entry: the common keys plus the kind's own."""
    from omha_core import config_validation as cv

    base: dict[Any, Any] = {
        vol.Required("name"): cv.identifier,
        vol.Required("kind"): cv.identifier,
        vol.Required("nodes"): {cv.identifier: cv.string_or_list},
        vol.Optional("action"): vol.In(["off", "reboot"], msg="expected 'off' or 'reboot'"),
        # seconds for one off, on or status (see FenceDevice.max_duration for what the core waits)
        vol.Optional("timeout", default=DEFAULT_TIMEOUT): cv.positive_float,
        vol.Optional("reboot_pause", default=1.0): cv.non_negative_float,
    }
    base.update(kind_schema)
    return vol.Schema(base)


@dataclass(frozen=True)
class ProcessResult:
    """What :func:`run_process` saw: the exit status (None when it was killed at its deadline) and output."""

    returncode: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def run_process(
    argv: list[str], timeout: float, *, input: str | None = None, env: Mapping[str, str] | None = None
) -> ProcessResult:
    """Run a fence command or agent, bounded by ``timeout`` seconds.

    It runs in a session of its own; at the deadline the whole process group is killed (not only the
    direct child, whose children would otherwise keep switching outlets after the core gave up on it).
    """
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
        return ProcessResult(proc.returncode, out, err)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:  # a descendant left the group and holds the pipes: stop reading
            proc.kill()
            out, err = "", ""
        proc.wait()
        return ProcessResult(None, out or "", err or "")
