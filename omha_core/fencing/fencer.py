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
messages are passed through :func:`~omha_core.secrets.scrub` against the configured secret values.

This module is the I/O shell: the :class:`Fencer` keeps each lost node's attempt, takes fence locks, runs the
device levels (:mod:`omha_core.fencing.levels`) in a worker thread and publishes records; what to do at each
step is decided by the pure :mod:`omha_core.fencing.machine`.
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
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.fencing import machine
from omha_core.fencing.levels import Device, build_devices, fence_levels
from omha_core.fencing.machine import Act
from omha_core.secrets import scrub, secret_values

if TYPE_CHECKING:
    import pluggy

    from omha_core.backends import Store
    from omha_core.config import Config

log = logging.getLogger("omha.fencing")

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

    def snapshot(self) -> machine.Attempt:
        """This attempt as the fence state machine's frozen input."""
        return machine.Attempt(
            incarnation=self.incarnation,
            lost_at=self.lost_at,
            attempts=self.attempts,
            next_try=self.next_try,
            busy=self.busy,
            running=self.running,
            errors=tuple(self.errors),
            record=self.record,
        )


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
        return machine.retry_delay(attempts, self.retry_max)

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
        policy = machine.Policy(me=self.me, on_failure=self.on_failure, grace=self.grace)
        for node, inc in lost.items():
            if node not in self.pending:
                old = self.finishing.get(node)
                if old is not None and old.incarnation == inc:
                    self.pending[node] = self.finishing.pop(node)  # lost again: its attempt carries on
                else:
                    self.pending[node] = _Pending(inc, now)
            p = self.pending[node]
            earlier = self.finishing.get(node)
            view = machine.View(
                node=node,
                now=now,
                attempt=p.snapshot(),
                record=records.get(node) or {},
                covered=self.covered(node),
                quorum=quorum,
                shown=self.state.get(node, {}),
                earlier=earlier.snapshot() if earlier is not None else None,
            )
            step = machine.advance(view, policy)
            if Act.TAKE_LOCK in step.actions:
                step = machine.advance(replace(view, lock_holder=self._lock(node, inc, alive)), policy)
            for act in step.actions:
                if act is Act.WARN_UNFENCED:
                    log.warning("%s: no fence device covers it; taking over its groups UNFENCED", node)
                elif act is Act.WARN_TAKEOVER:
                    log.warning("%s: fencing FAILED; taking over its groups anyway (on_fence_failure = takeover)", node)
                elif act is Act.START:
                    p.attempts = step.attempt.attempts
                    p.task = asyncio.get_running_loop().create_task(self._fence(node, inc, p))
            if step.safe:
                safe.add(node)
            if step.status is not None:
                self.state[node] = step.status
        return safe

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
        end = machine.finish(result is not None, p.record is not None, p.attempts, self.retry_max)
        if not end.publish:
            log.error("%s: fenced (off), but the rest of the power cycle failed: %s", node, "; ".join(outcome.errors))
            return
        record = self._record(node, inc, dev, outcome.action, result, outcome.errors)
        if end.fenced:
            p.record = record  # fenced: never again for this loss, even if the record cannot be written
        try:
            await asyncio.to_thread(self.store.put_fence_record, node, record)
        except Exception as exc:  # a store failure: the record is retried by the next attempt (or kept above)
            log.error("%s: cannot write the fence record: %s", node, exc)
        if result is not None and dev is not None:
            verified = "" if result.verified else ", unverified"
            log.warning("%s: fenced by %s (%s%s)", node, dev.name, outcome.action, verified)
            if end.notify:  # else told when it was switched off
                action = outcome.action or self.action  # set whenever a device succeeded
                hooks.notify_node_fenced(self.pm, node=node, device=dev.name, action=action, result=result)
                if self.on_fenced is not None:
                    self.on_fenced()
        else:
            p.errors = outcome.errors
            delay = end.retry_in if end.retry_in is not None else self.retry_delay(p.attempts)
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
