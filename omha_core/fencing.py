"""Fence-before-takeover: who fences a lost node, with which devices, and what the others may do meanwhile.

A node that is lost while it held groups (active in its last status, or holding claims) may still be writing
to shared disks, so its groups are started elsewhere only once it is fenced:

- exactly one survivor fences each lost incarnation: it takes the store's fence lock for
  ``(node, incarnation)``; if that fencer is itself lost before publishing a result, the next survivor takes
  a lock of its own for the same incarnation;
- devices are tried in configured order (levels) until one succeeds; ``off`` / ``reboot`` results are
  verified by the device where it can read the state back;
- the outcome is published as a fence record; every node that sees a successful record for the node's last
  incarnation breaks the node's claims, which lets the decision loop start its groups;
- when every device fails the groups stay down (``on_fence_failure = "wait"``, retried with backoff) or are
  taken over anyway (``"takeover"``); a node no device covers is taken over after ``unfenced_grace``
  seconds, with a warning in the log and in status.

Only a partition with quorum fences anybody. Credentials never appear in records, logs or status: device
messages are passed through :func:`scrub` against the configured secret values.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omha_core.config import is_secret
from omha_core.fence_devices import FenceDevice, FenceResult

if TYPE_CHECKING:
    import pluggy

    from omha_core.backends import Store
    from omha_core.config import Config

log = logging.getLogger("omha.fencing")


@dataclass
class Device:
    """One configured fence device: its instance and its node map."""

    name: str
    kind: str
    plugin: str
    device: FenceDevice
    nodes: Mapping[str, list[str]]
    action: str | None
    timeout: float


def build_devices(config: Config, pm: pluggy.PluginManager) -> list[Device]:
    """Instantiate every ``[[fencing.devices]]`` entry, in order."""
    from omha_core.plugins import registry

    kinds = registry(pm, "omha_fence_devices")
    out = []
    for entry in config.section("fencing").get("devices", []):
        cls, plugin = kinds[entry["kind"]]
        options = {k: v for k, v in entry.items() if k not in ("name", "kind", "nodes")}
        out.append(
            Device(
                name=entry["name"],
                kind=entry["kind"],
                plugin=plugin,
                device=cls(entry["name"], options),
                nodes=entry["nodes"],
                action=entry.get("action"),
                timeout=float(entry.get("timeout", 20.0)),
            )
        )
    return out


def secret_values(config: Config) -> list[str]:
    """Every credential value in the fencing configuration, for scrubbing messages: written in the config, or
    read from a ``*_file`` / ``*_env`` option (what a device actually sends is what might be echoed back)."""
    from omha_core.config import read_secret
    from omha_core.errors import ConfigError

    values = []
    for entry in config.section("fencing").get("devices", []):
        for key, value in entry.items():
            base = str(key).removesuffix("_file").removesuffix("_env")
            if not is_secret(base):
                continue
            if key == base and isinstance(value, str) and value:
                values.append(value)
            elif key != base:
                try:
                    secret = read_secret(entry, base)
                except ConfigError:
                    continue
                if secret:
                    values.append(secret)
    return sorted(set(values), key=len, reverse=True)


def scrub(message: str, secrets: list[str]) -> str:
    """Replace any secret value in ``message`` by ``***``."""
    for s in secrets:
        message = message.replace(s, "***")
    return message


def run_device(dev: Device, action: str, node: str, secrets: list[str]) -> FenceResult:
    """Call one device for ``node`` within the device's ``timeout`` (plus a margin for its own clean-up).

    Any exception becomes a failed result; a device call that does not return in time is reported as failed
    and abandoned in a daemon thread (Python cannot kill a thread), so a hung plugin never blocks fencing.
    Messages are scrubbed of secrets.
    """
    box: list[FenceResult] = []

    def call() -> None:
        try:
            box.append(dev.device.fence(action, list(dev.nodes[node]), node))
        except Exception as exc:  # a device plugin's bug must not take the daemon down
            box.append(FenceResult(ok=False, message=f"{type(exc).__name__}: {exc}"))

    worker = threading.Thread(target=call, name=f"fence-{dev.name}", daemon=True)
    worker.start()
    worker.join(dev.timeout + 5.0)
    if not box:
        result = FenceResult(ok=False, message=f"{dev.name}: no answer within {dev.timeout:g} s (timeout)")
    else:
        result = box[0]
    return FenceResult(result.ok, result.verified, scrub(result.message, secrets), result.state)


def fence_node(
    devices: list[Device], node: str, action: str, secrets: list[str]
) -> tuple[FenceResult | None, str | None, list[str]]:
    """Try every device that covers ``node`` in order. Returns (result, device name, errors of the others)."""
    errors: list[str] = []
    for dev in devices:
        if node not in dev.nodes:
            continue
        act = (dev.action or action) if action in ("off", "reboot") else action
        result = run_device(dev, act, node, secrets)
        if result.ok:
            return result, dev.name, errors
        errors.append(f"{dev.name} ({dev.kind}): {result.message or 'failed'}")
    return None, None, errors


@dataclass
class _Pending:
    incarnation: str
    lost_at: float
    attempts: int = 0
    next_try: float = 0.0
    task: asyncio.Task[None] | None = None
    errors: list[str] = field(default_factory=list)
    #: this node's own successful fence record, until the store shows it (the records are read before the step)
    record: dict[str, Any] | None = None


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
        self.state: dict[str, dict[str, Any]] = {}  # what `omha status` shows per lost node

    def covered(self, node: str) -> bool:
        """True when some device can fence ``node``."""
        return any(node in d.nodes for d in self.devices)

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
                if p.task and not p.task.done():
                    p.task.cancel()
                self.state.pop(node, None)
        safe: set[str] = set()
        for node, inc in lost.items():
            if node not in self.pending:
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
                if now - p.lost_at >= self.grace:
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
                self.state[node] = {"state": "fence-failed", "takeover": True, **_public(rec)}
                continue
            if not quorum:
                self.state[node] = {"state": "waiting", "reason": "no quorum: this partition fences nobody"}
                continue
            if p.task is not None and not p.task.done():
                self.state[node] = self._in_progress(p)
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
        reason stays visible in status."""
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

    async def _fence(self, node: str, inc: str, p: _Pending) -> None:
        log.warning("%s: lost while holding groups; fencing (%s)", node, self.action)
        result, device, errors = await asyncio.to_thread(fence_node, self.devices, node, self.action, self.secrets)
        record: dict[str, Any] = {
            "node": node,
            "incarnation": inc,
            "by": self.me,
            "time": time.time(),
            "action": self.action,
            "ok": result is not None,
            "result": "ok" if result is not None else "failed",
            "device": device,
            "verified": bool(result and result.verified),
            "message": result.message if result else "; ".join(errors),
            "errors": errors,
        }
        await asyncio.to_thread(self.store.put_fence_record, node, record)
        if result is not None:
            p.record = record
            log.warning("%s: fenced by %s (%s%s)", node, device, self.action, "" if result.verified else ", unverified")
            self._notify("omha_node_fenced", node=node, device=device, action=self.action, result=result)
        else:
            p.errors = errors
            delay = min(self.retry_max, 2.0 ** min(p.attempts, 10))
            p.next_try = self.clock() + delay
            log.error("%s: fencing FAILED on every device (%s); retry in %.0f s", node, "; ".join(errors), delay)
            self._notify("omha_fence_failed", node=node, errors=errors)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception:
            log.exception("a %s hook implementation failed", hook)

    async def close(self) -> None:
        """Cancel fencing in progress (daemon shutdown)."""
        for p in self.pending.values():
            if p.task and not p.task.done():
                p.task.cancel()


def _public(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("by", "device", "action", "verified", "time", "message") if k in record}
