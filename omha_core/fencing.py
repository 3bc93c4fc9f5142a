"""Fence-before-takeover: who fences a lost node, with which devices, and what the others may do meanwhile.

A node that is lost while it held groups (active in its last status, or holding claims) may still be writing
to shared disks, so its groups are started elsewhere only once it is fenced:

- exactly one survivor fences each lost incarnation: it takes the store's fence lock for
  ``(node, incarnation)``; if that fencer is itself lost before publishing a result, the next survivor takes
  a lock of its own for the same incarnation;
- devices are tried in configured order (levels) until one succeeds; ``off`` / ``reboot`` results are
  verified by the device where it can read the state back;
- one device call at a time: each device declares how long a call may take
  (:meth:`~omha_core.fence_devices.FenceDevice.max_duration`); a call still running past that is reported as
  failed and still running, and nothing else (no next level, no retry) starts until it has ended;
- the outcome is published as a fence record, with what the device really did (its own ``action`` may
  override the cluster's, never an operator's explicit ``omha fence --action``); every node that sees a
  successful record for the node's last incarnation breaks the node's claims, which lets the decision loop
  start its groups;
- when every device fails the groups stay down (``on_fence_failure = "wait"``, retried with a growing delay
  capped at ``retry_max``) or are taken over anyway (``"takeover"``, said in status); a node no device covers
  is taken over after ``unfenced_grace`` seconds, with a warning in the log and in status.

Only a partition with quorum fences anybody. Credentials never appear in records, logs or status: device
messages are passed through :func:`scrub` against the configured secret values.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from omha_core import hooks
from omha_core.config import is_secret
from omha_core.fence_devices import DEFAULT_TIMEOUT, FenceDevice, FenceResult, Target, UnsupportedAction

if TYPE_CHECKING:
    import pluggy

    from omha_core.backends import Store
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


def secret_values(config: Config) -> list[str]:
    """Every credential value in the fencing configuration, for scrubbing messages: written in the config
    (also inside a device's ``args``), or read from a ``*_file`` / ``*_env`` option (what a device actually
    sends is what might be echoed back)."""
    values: list[str] = []
    for entry in config.section("fencing").get("devices", []):
        _collect_secrets(entry, values)
    return sorted(set(values), key=len, reverse=True)


def _collect_secrets(options: Mapping[str, Any], values: list[str]) -> None:
    from omha_core.config import read_secret
    from omha_core.errors import ConfigError

    for key, value in options.items():
        if isinstance(value, Mapping):
            _collect_secrets(value, values)
            continue
        base = str(key).removesuffix("_file").removesuffix("_env")
        if not is_secret(base):
            continue
        if key == base:
            values += [str(v) for v in (value if isinstance(value, list) else [value]) if _scalar(v)]
        else:
            try:
                secret = read_secret(options, base)
            except ConfigError:
                continue
            if secret:
                values.append(secret)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != ""


def scrub(message: str, secrets: list[str]) -> str:
    """Replace any secret value in ``message`` by ``***``."""
    for s in secrets:
        message = message.replace(s, "***")
    return message


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
    for dev in devices:
        if node not in dev.nodes:
            continue
        act = dev.action_for(action, explicit)
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


# -- the daemon's side ----------------------------------------------------------------------------------------


@dataclass
class _Pending:
    incarnation: str
    lost_at: float
    attempts: int = 0
    next_try: float = 0.0
    task: asyncio.Task[None] | None = None
    errors: list[str] = field(default_factory=list)
    #: a device call of the current attempt overran its maximum and still runs (the note says which)
    running: str | None = None
    #: this node's own successful fence record, until the store shows it (the records are read before the step)
    record: dict[str, Any] | None = None

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()


class Fencer:
    """The fencing side of one daemon: decides which lost nodes are safe to take over from."""

    def __init__(
        self,
        config: Config,
        pm: pluggy.PluginManager,
        store: Store,
        me: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.pm = pm
        self.store = store
        self.me = me
        self.clock = clock
        opts = config.section("fencing")
        self.action = str(opts.get("action", "reboot"))
        self.on_failure = str(opts.get("on_fence_failure", "wait"))
        self.grace = float(opts.get("unfenced_grace", 0.0))
        self.retry_max = float(opts.get("retry_max", 30.0))
        self.devices = build_devices(config, pm)
        self.secrets = secret_values(config)
        self.pending: dict[str, _Pending] = {}
        #: attempts whose node was no longer lost (it came back) while a device call still ran: a device call
        #: cannot be interrupted, so the node is not fenced again until it has ended
        self.finishing: dict[str, _Pending] = {}
        self.state: dict[str, dict[str, Any]] = {}  # what `omha status` shows per lost node
        self._stop = threading.Event()
        #: called (in the event loop) once a node is fenced, so that the daemon's next cycle need not wait
        self.on_fenced: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        for dev in self.devices:
            dev.device.off_done = self._off_done

    def covered(self, node: str) -> bool:
        """True when some device can fence ``node``."""
        return any(node in d.nodes for d in self.devices)

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones: 2, 4, 8, ... capped at ``retry_max``."""
        return min(self.retry_max, 2.0 ** min(attempts, 10))

    def step(
        self,
        lost: Mapping[str, str],
        alive: set[str],
        records: Mapping[str, Mapping[str, Any]],
        quorum: bool,
    ) -> set[str]:
        """Advance fencing of every lost node that held groups; return those now safe to take over from.

        :param lost: lost nodes that held groups -> the incarnation they were lost in.
        :param alive: nodes heartbeating now.
        :param records: the store's fence records.
        :param quorum: this partition has quorum.
        """
        now = self.clock()
        for node in list(self.pending):
            if node not in lost or self.pending[node].incarnation != lost[node]:
                p = self.pending.pop(node)
                self.state.pop(node, None)
                if p.busy:
                    self.finishing[node] = p
        for node in [n for n, p in self.finishing.items() if not p.busy]:
            del self.finishing[node]
        safe: set[str] = set()
        for node, inc in lost.items():
            if node not in self.pending:
                old = self.finishing.get(node)
                if old is not None and old.incarnation == inc:
                    self.pending[node] = self.finishing.pop(node)  # lost again: its attempt carries on
                else:
                    self.pending[node] = _Pending(inc, now)
            p = self.pending[node]
            rec = records.get(node) or {}
            if p.record is not None and not (rec.get("incarnation") == inc and rec.get("ok")):
                rec = p.record  # we fenced it after this cycle read the records: never fence it again
            if rec.get("incarnation") == inc and rec.get("ok"):
                safe.add(node)
                self.state[node] = {"state": "fenced", **_public(rec)}
                continue
            if not self.covered(node):
                if not quorum:  # taking over unfenced is a takeover too: only a quorate partition does it
                    self.state[node] = {"state": "waiting", "reason": "no quorum: this partition takes over nothing"}
                elif now - p.lost_at >= self.grace:
                    safe.add(node)
                    if self.state.get(node, {}).get("state") != "unfenced":
                        log.warning("%s: no fence device covers it; taking over its groups UNFENCED", node)
                    warning = "no fence device configured; taken over unfenced"
                    self.state[node] = {"state": "unfenced", "warning": warning}
                else:
                    self.state[node] = {"state": "grace", "remaining": round(self.grace - (now - p.lost_at), 1)}
                continue
            if rec.get("incarnation") == inc and rec.get("result") == "failed" and self.on_failure == "takeover":
                safe.add(node)
                if self.state.get(node, {}).get("takeover") is None:
                    log.warning("%s: fencing FAILED; taking over its groups anyway (on_fence_failure = takeover)", node)
                self.state[node] = {
                    "state": "fence-failed",
                    **_public(rec),
                    "takeover": True,
                    "warning": f"fencing failed ({rec.get('message') or 'every device failed'}); its groups were "
                    "taken over anyway (on_fence_failure = takeover)",
                }
                continue
            if not quorum:
                self.state[node] = {"state": "waiting", "reason": "no quorum: this partition fences nobody"}
                continue
            if p.busy:
                self.state[node] = self._in_progress(p)
                continue
            old = self.finishing.get(node)
            if old is not None and old.busy:
                reason = old.running or "a fence call of an earlier loss is still running"
                self.state[node] = {"state": "fencing", "by": self.me, "reason": f"waiting: {reason}"}
                continue
            if now < p.next_try:
                self.state[node] = {
                    "state": "fence-failed",
                    "errors": p.errors,
                    "retry_in": round(p.next_try - now, 1),
                }
                continue
            holder = self._lock(node, inc, alive)
            if holder != self.me:
                if rec.get("incarnation") == inc and rec.get("result") == "failed":
                    errors = list(rec.get("errors") or [])
                    self.state[node] = {"state": "fence-failed", "by": holder, "errors": errors, "retrying": True}
                else:
                    self.state[node] = {"state": "fencing", "by": holder}
                continue
            p.attempts += 1
            p.task = asyncio.get_running_loop().create_task(self._fence(node, inc, p))
            self.state[node] = self._in_progress(p)
        return safe

    def _in_progress(self, p: _Pending) -> dict[str, Any]:
        """Fencing under way; after a failure the state stays "fence-failed" while retrying, so that the
        reason stays visible in status; a device call past its maximum is "fence-failed" and still running."""
        if p.running:
            return {
                "state": "fence-failed",
                "by": self.me,
                "errors": [*p.errors, p.running],
                "still_running": True,
                "attempt": p.attempts,
            }
        if p.errors:
            return {"state": "fence-failed", "by": self.me, "errors": p.errors, "retrying": True, "attempt": p.attempts}
        return {"state": "fencing", "by": self.me, "attempt": p.attempts}

    def _lock(self, node: str, inc: str, alive: set[str]) -> str:
        """Take (or find) the fence lock for ``node``'s incarnation; a lost fencer's lock passes on.

        A store that cannot say who holds a lock (``fence_lock_holder`` returns None) never passes it on:
        fencing twice is worse than waiting for the first fencer.
        """
        key = inc
        for _ in range(8):
            if self.store.fence_lock(node, key, self.me):
                return self.me
            holder = self.store.fence_lock_holder(node, key)
            if holder is None or holder in alive:
                return holder or "?"
            key = f"{inc}.{holder}"
        return "?"

    def _record(
        self, node: str, inc: str, dev: Device | None, action: str | None, result: FenceResult | None, errors: list[str]
    ) -> dict[str, Any]:
        """The fence record of one attempt: what was really done (the device's own action where it overrides
        the cluster's), by whom, and whether it was read back."""
        return {
            "node": node,
            "incarnation": inc,
            "by": self.me,
            "time": time.time(),
            "action": action or self.action,
            "requested": self.action,
            "ok": result is not None,
            "result": "ok" if result is not None else "failed",
            "device": dev.name if dev else None,
            "kind": dev.kind if dev else None,
            "plugin": dev.plugin if dev else None,
            "verified": bool(result and result.verified),
            "message": result.message if result else "; ".join(errors),
            "errors": errors,
        }

    def _off_done(self, device: FenceDevice, node: str, off: FenceResult) -> None:
        """A power cycle switched ``node`` off (read back where the device can): publish it fenced now, in the
        device call's worker thread, rather than after the reboot pause and the power-on. The node is off, which
        is all a takeover needs; the record of the whole cycle replaces this one when the call returns."""
        p = self.pending.get(node)
        dev = next((d for d in self.devices if d.device is device), None)
        if p is None or not p.busy or dev is None or p.record is not None or self._loop is None:
            return  # not one of this fencer's automatic fence calls
        try:
            message = scrub(f"{off.message}; power-on follows", self.secrets)
            result = replace(off, message=message)
            record = self._record(node, p.incarnation, dev, dev.action_for(self.action), result, list(p.errors))
            self.store.put_fence_record(node, record)
        except Exception:  # the whole cycle's record is still published when the call returns
            log.exception("%s: publishing the fence before the power-on failed", node)
            return
        p.record = record
        verified = "" if off.verified else ", unverified"
        log.warning("%s: fenced by %s (off%s; power-on follows)", node, dev.name, verified)
        self._loop.call_soon_threadsafe(
            functools.partial(
                hooks.notify_node_fenced, self.pm, node=node, device=dev.name, action=record["action"], result=result
            )
        )
        if self.on_fenced is not None:
            self._loop.call_soon_threadsafe(self.on_fenced)

    async def _fence(self, node: str, inc: str, p: _Pending) -> None:
        log.warning("%s: lost while holding groups; fencing (%s)", node, self.action)
        self._loop = asyncio.get_running_loop()

        def overrun(note: str) -> None:
            p.running = note

        try:
            outcome = await asyncio.to_thread(
                fence_levels, self.devices, node, self.action, self.secrets, overrun, self._stop
            )
        finally:
            p.running = None
        result, dev = outcome.result, outcome.device
        early = p.record
        if result is None and early is not None:
            # switched off and published fenced, then the power-on (or the rest of the cycle) failed: the node
            # stays fenced; a failure now must not replace the record the takeover already relied on
            log.error("%s: fenced (off), but the rest of the power cycle failed: %s", node, "; ".join(outcome.errors))
            return
        record = self._record(node, inc, dev, outcome.action, result, outcome.errors)
        if result is not None:
            p.record = record  # fenced: never again for this loss, even if the record cannot be written
        try:
            await asyncio.to_thread(self.store.put_fence_record, node, record)
        except Exception as exc:  # a store failure: the record is retried by the next attempt (or kept above)
            log.error("%s: cannot write the fence record: %s", node, exc)
        if result is not None and dev is not None:
            verified = "" if result.verified else ", unverified"
            log.warning("%s: fenced by %s (%s%s)", node, dev.name, outcome.action, verified)
            if early is None:  # else told when it was switched off
                action = outcome.action or self.action  # set whenever a device succeeded
                hooks.notify_node_fenced(self.pm, node=node, device=dev.name, action=action, result=result)
                if self.on_fenced is not None:
                    self.on_fenced()
        else:
            p.errors = outcome.errors
            delay = self.retry_delay(p.attempts)
            p.next_try = self.clock() + delay
            log.error("%s: fencing FAILED on every device (%s); retry in %.0f s", node, "; ".join(p.errors), delay)
            hooks.notify_fence_failed(self.pm, node=node, errors=p.errors)

    async def close(self) -> None:
        """Stop waiting for fence calls in progress (daemon shutdown): a device call cannot be interrupted,
        but the daemon need not wait for it to end."""
        self._stop.set()
        for p in [*self.pending.values(), *self.finishing.values()]:
            if p.task and not p.task.done():
                p.task.cancel()


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("by", "device", "kind", "action", "verified", "time", "message")
    return {k: record.get(k) for k in keys if k in record}
