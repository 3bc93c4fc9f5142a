"""Fence devices and levels: the configured devices, one bounded device call, and trying the devices that
cover a node in order until one succeeds.

- devices are tried in configured order (levels) until one succeeds; ``off`` / ``reboot`` results are
  verified by the device where it can read the state back;
- one device call at a time: each device declares how long a call may take
  (:meth:`~omha_core.fence_devices.FenceDevice.max_duration`); a call still running past that is reported as
  failed and still running, and nothing else (no next level, no retry) starts until it has ended.

This is blocking code, run in a worker thread by the :class:`~omha_core.fencing.fencer.Fencer` and directly
by ``omha fence``; it decides nothing about *when* to fence (that is :mod:`omha_core.fencing.machine`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from omha_core.fence_devices import DEFAULT_TIMEOUT, FenceDevice, FenceResult, Target, UnsupportedAction
from omha_core.secrets import scrub

if TYPE_CHECKING:
    import pluggy

    from omha_core.config import Config

log = logging.getLogger("omha.fencing")

#: what a note about a device call that overran its declared duration is handed to
OverrunHook = Callable[[str], None]


@dataclass
class Device:
    """One configured fence device: its instance, its node map, and its own action (``off`` / ``reboot``)."""

    name: str
    kind: str
    plugin: str
    device: FenceDevice
    nodes: Mapping[str, list[str]]
    action: str | None

    def action_for(self, action: str, explicit: bool = False) -> str:
        """What this device does when asked for ``action``.

        Its own ``action`` replaces the cluster's fencing action (``off`` / ``reboot``) in automatic fencing
        only; an ``explicit`` action (an operator's ``omha fence NODE --action off``) is done as asked, and
        ``on`` and ``status`` always are.
        """
        if explicit or action not in ("off", "reboot"):
            return action
        return self.action or action


def build_devices(config: Config, pm: pluggy.PluginManager) -> list[Device]:
    """Instantiate every ``[[fencing.devices]]`` entry, in order."""
    from omha_core import hooks
    from omha_core.errors import ConfigError
    from omha_core.plugins import broken_hint

    kinds = hooks.fence_devices(pm)
    out = []
    for entry in config.section("fencing").get("devices", []):
        if entry["kind"] not in kinds:
            name, kind = entry["name"], entry["kind"]
            raise ConfigError(f"[fencing.devices] {name}: kind {kind!r} is not installed{broken_hint(pm)}")
        cls, plugin = kinds[entry["kind"]]
        options = {k: v for k, v in entry.items() if k not in ("name", "kind", "nodes")}
        try:
            device = cls(entry["name"], options)
        except Exception as exc:  # the plugin's bug: name it, rather than a traceback at start-up
            raise ConfigError(
                f"[fencing.devices] {entry['name']}: plugin {plugin} failed to create the {entry['kind']!r} device: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        out.append(
            Device(
                name=entry["name"],
                kind=entry["kind"],
                plugin=plugin,
                device=device,
                nodes=entry["nodes"],
                action=entry.get("action"),
            )
        )
    return out


# -- one device call, bounded -------------------------------------------------------------------------------


def overrun_margin(limit: float) -> float:
    """Extra seconds granted beyond a device's declared maximum (process clean-up, a loaded machine)."""
    return max(1.0, 0.1 * limit)


@dataclass
class _Call:
    """How a bounded call ended: its value or exception; ``overran`` when it outlived its limit; ``abandoned``
    when the caller stopped waiting (daemon shutdown) while it still ran."""

    value: Any = None
    error: BaseException | None = None
    overran: bool = False
    abandoned: bool = False


def _bounded(
    name: str,
    call: Callable[[], Any],
    limit: float,
    overrun_note: str,
    on_overrun: OverrunHook | None,
    stop: threading.Event | None,
) -> _Call:
    """Run ``call`` in a thread; past ``limit`` (and its margin) report ``overrun_note`` and keep waiting
    until it ends (or ``stop`` is set): a device call cannot be interrupted, so nothing may run beside it."""
    box: list[_Call] = []

    def worker() -> None:
        try:
            box.append(_Call(value=call()))
        except BaseException as exc:  # a device plugin's bug must not take the daemon down
            box.append(_Call(error=exc))

    thread = threading.Thread(target=worker, name=f"fence-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + limit + overrun_margin(limit)
    overran = False
    while thread.is_alive():
        if stop is not None and stop.is_set():  # daemon shutdown: stop waiting (the thread is a daemon thread)
            return _Call(overran=overran, abandoned=True)
        if not overran and time.monotonic() >= deadline:
            overran = True
            log.error("%s", overrun_note)
            if on_overrun is not None:
                on_overrun(overrun_note)
        thread.join(min(0.2, max(0.0, deadline - time.monotonic())) if not overran else 0.2)
    done = box[0]
    done.overran = overran
    return done


def _limit(dev: Device, action: str, targets: list[str]) -> float:
    try:
        return float(dev.device.max_duration(action, targets))
    except Exception:  # a plugin's bug: fall back to the documented default rather than not fencing
        log.exception("%s: max_duration(%r) failed; assuming %g s", dev.name, action, DEFAULT_TIMEOUT)
        return DEFAULT_TIMEOUT


def run_device(
    dev: Device,
    action: str,
    node: str,
    secrets: list[str],
    on_overrun: OverrunHook | None = None,
    stop: threading.Event | None = None,
) -> FenceResult:
    """Call one device for ``node``, waiting as long as the device says the call may take.

    Any exception becomes a failed result. A call past its maximum is reported through ``on_overrun`` (and the
    log) as failed and still running, and waited for: its late result is returned, marked as late (a late
    success is a success: the node was switched). Messages are scrubbed of secrets.
    """
    targets = list(dev.nodes[node])
    limit = _limit(dev, action, targets)
    note = (
        f"{dev.name}: {action} of {node} still running after {limit:g} s, the most it should take: counted as "
        "failed; waiting for it to end before any other device or retry is tried"
    )
    call = _bounded(dev.name, lambda: dev.device.fence(action, targets, node), limit, note, on_overrun, stop)
    if call.abandoned:
        result = FenceResult(ok=False, message=f"{dev.name}: {action} still running when fencing was stopped")
    elif call.error is not None:
        result = FenceResult(ok=False, message=f"{dev.name}: {type(call.error).__name__}: {call.error}")
    elif not isinstance(call.value, FenceResult):
        result = FenceResult(ok=False, message=f"{dev.name}: the device returned {type(call.value).__name__}")
    else:
        result = call.value
    if call.overran and not call.abandoned:
        late = f"overran its {limit:g} s limit"
        message = f"{result.message} ({late})" if result.ok else f"{dev.name}: {late}, then: {result.message}"
        result = replace(result, message=message)
    return replace(
        result, message=scrub(result.message, secrets), unverified_reason=scrub(result.unverified_reason, secrets)
    )


@dataclass(frozen=True)
class Outcome:
    """What fencing a node through the device levels came to.

    :param result: the successful device's result; None when every device failed.
    :param device: the device that succeeded.
    :param action: what that device did (its own ``action`` when it overrides the cluster's).
    :param errors: one scrubbed message per device that failed before, in order.
    """

    result: FenceResult | None
    device: Device | None
    action: str | None
    errors: list[str]


def plan(devices: list[Device], node: str, action: str, *, explicit: bool = False) -> list[tuple[Device, str]]:
    """The levels for ``node``: every device that covers it, in configured order, with what each is to do
    (a device's own ``action`` replaces the cluster's in automatic fencing; see :meth:`Device.action_for`)."""
    return [(dev, dev.action_for(action, explicit)) for dev in devices if node in dev.nodes]


def fence_levels(
    devices: list[Device],
    node: str,
    action: str,
    secrets: list[str],
    on_overrun: OverrunHook | None = None,
    stop: threading.Event | None = None,
    *,
    explicit: bool = False,
) -> Outcome:
    """Try every device that covers ``node`` in order, one call at a time, until one succeeds.

    :param explicit: ``action`` was asked for by an operator: it is done as asked, whatever a device's own
        ``action`` (which only replaces the cluster's action in automatic fencing).
    """
    errors: list[str] = []
    for dev, act in plan(devices, node, action, explicit=explicit):
        result = run_device(dev, act, node, secrets, on_overrun, stop)
        if result.ok:
            return Outcome(result, dev, act, errors)
        errors.append(f"{dev.name} ({dev.kind}): {result.message or 'failed'}")
        if stop is not None and stop.is_set():
            break
    return Outcome(None, None, None, errors)


def fence_node(
    devices: list[Device], node: str, action: str, secrets: list[str]
) -> tuple[FenceResult | None, str | None, list[str]]:
    """:func:`fence_levels` as ``(result, device name, errors of the others)``."""
    outcome = fence_levels(devices, node, action, secrets)
    return outcome.result, outcome.device.name if outcome.device else None, outcome.errors


@dataclass(frozen=True)
class Answer:
    """One device's answer to an operator's ``status`` or ``list`` (``omha fence NODE --action ...``).

    :param ok: the device answered.
    :param supported: False when the kind cannot do this at all.
    :param result: for ``status``: the device's result.
    :param targets: for ``list``: every target of the device.
    :param message: why not, when not ``ok`` (scrubbed).
    """

    device: Device
    ok: bool
    supported: bool = True
    result: FenceResult | None = None
    targets: list[Target] = field(default_factory=list)
    message: str = ""


def query_device(dev: Device, action: str, node: str, secrets: list[str]) -> Answer:
    """Ask one device for ``node``'s ``status``, or for the ``list`` of all its targets."""
    if not dev.device.supports(action):
        what = "listing its targets" if action == "list" else action
        return Answer(dev, ok=False, supported=False, message=f"{what} is not supported by kind {dev.kind!r}")
    if action == "status":
        result = run_device(dev, "status", node, secrets)
        return Answer(dev, ok=result.ok, result=result, message="" if result.ok else result.message)
    limit = _limit(dev, "list", [])
    note = f"{dev.name}: list still running after {limit:g} s; waiting for it to end"
    call = _bounded(dev.name, dev.device.list_targets, limit, note, None, None)
    if isinstance(call.error, UnsupportedAction):
        return Answer(dev, ok=False, supported=False, message=scrub(str(call.error), secrets))
    if call.error is not None:
        return Answer(dev, ok=False, message=scrub(f"{type(call.error).__name__}: {call.error}", secrets))
    targets = [t for t in (call.value or []) if isinstance(t, Target)]
    return Answer(dev, ok=True, targets=[Target(t.id, scrub(t.name, secrets), t.state) for t in targets])
