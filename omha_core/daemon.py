"""The node daemon: membership -> quorum -> status -> fence -> decide -> act, every heartbeat.

One asyncio loop runs everything: the local init (processes of this node's groups), the control socket, and
the cycle below. Store I/O runs in worker threads so a slow store never blocks process supervision.

Each cycle:

1. heartbeat the membership layer and read the cluster: every status, claims, fence records, documents;
2. judge liveness (changing ``seq`` on our monotonic clock) and quorum;
3. adopt the newest *valid* ``cltab`` / ``hactl`` (an invalid one is refused; the last good one keeps running);
4. fence lost nodes that held groups, and break their claims once fenced;
5. :func:`omha_core.decide.decide` on the assembled :class:`~omha_core.decide.View`, then carry out its actions;
6. publish this node's status (``seq`` + 1).

The cycle runs every ``[timing] heartbeat`` seconds and also at once when a local group changes state, so a
plan -> test -> run sequence does not wait for heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from omha_core import hooks
from omha_core._version import __version__
from omha_core.agent import CLASSES_ENV, classes_env
from omha_core.alerts import start_alerts
from omha_core.backends import DOCUMENTS, Membership, Store, Versioned
from omha_core.cltab import Cltab
from omha_core.config import Config
from omha_core.decide import Action, Instance, NodeView, View, decide
from omha_core.errors import OmhaError, ParseError, StoreError, StoreUnavailable
from omha_core.fencing import Fencer
from omha_core.fitness import Fitness
from omha_core.hactl import STOP_LEVEL
from omha_core.liveness import Liveness
from omha_core.logsetup import setup_logging
from omha_core.observability import Observability
from omha_core.operator import OperatorFollower, clean_up
from omha_core.quorum import Quorum
from omha_core.rules import (
    Failed,
    claim_breaker,
    expire_failed,
    lost_holding_groups,
    settling,
    track_moves,
    waiting_since,
)
from omha_core.signals import install_signal_handlers
from omha_core.status import NodeStatus, StatusProblem, parse_status
from omha_core.systemd import sd_notify  # noqa: F401 - re-exported for existing callers
from omha_core.uniqueness import DuplicateNode, impostor, lock_state_dir, wait_out_previous
from omha_core.validate import check_document

log = logging.getLogger("omha.daemon")

#: shortest time between two cycles when local state changes quickly (a respawn storm)
MIN_CYCLE = 0.02


def open_backends(
    config: Config, pm: pluggy.PluginManager, wait_every: float | None = None
) -> tuple[Store, Membership]:
    """Instantiate and open the configured store and membership backends.

    With ``wait_every`` (the daemon at start-up), a store that does not answer (:class:`StoreUnavailable`: etcd
    down or out of reach) is tried again every ``wait_every`` seconds until it does: nothing runs on this node
    before it has joined, so waiting is safe, and exiting would only make a supervisor restart us in a loop. Any
    other error (a refusal, a duplicate node, a plugin's bug) still stops the start."""
    announced = ""
    while True:
        try:
            return _open_backends(config, pm)
        except StoreUnavailable as exc:
            if wait_every is None:
                raise
            if str(exc) != announced:
                log.warning("waiting for the store: %s", exc)
                announced = str(exc)
            time.sleep(wait_every)


def _open_backends(config: Config, pm: pluggy.PluginManager) -> tuple[Store, Membership]:
    cluster = config.section("cluster")
    store_factory = hooks.store_backend(pm, cluster["store"])
    mem_factory = hooks.membership_backend(pm, cluster["membership"])
    store: Store | None = None
    try:
        store = store_factory(config)
        store.open()
        membership: Membership = mem_factory(config, store)
        membership.open()
    except OmhaError:
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()  # its connections, before a retry opens new ones
        raise
    except Exception as exc:  # a backend plugin's bug: a clear message at start-up rather than a traceback
        which = f"store {cluster['store']!r} / membership {cluster['membership']!r}"
        raise OmhaError(f"cannot open the {which} backends: {type(exc).__name__}: {exc}") from exc
    return store, membership


class Daemon:
    """One node of the cluster."""

    def __init__(self, config: Config, pm: pluggy.PluginManager, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        #: this node's monotonic clock (a seam: the simulation in tests/sim/ runs nodes on simulated time)
        self.clock = clock
        self.pm = pm
        timing = config.timing
        self.heartbeat = float(timing.get("heartbeat", 0.5))
        self.dead_after = float(timing.get("dead_after", 2.0))
        settle = timing.get("settle")
        self.settle = float(self.dead_after if settle is None else settle)
        isolate = timing.get("isolate_after")
        self.isolate_after = float(self.dead_after / 2 if isolate is None else isolate)
        #: how long a failed test keeps this node out of the running for a group (unless cltab/hactl change)
        self.failed_retry = float(timing["failed_retry"])
        self.incarnation = uuid.uuid4().hex[:12]
        self.seq = 0
        self.liveness = Liveness(self.dead_after, clock)
        self._lock_fd = lock_state_dir(config.state_dir)  # one daemon per state directory, for life
        self.quorum = Quorum(config.section("quorum"), os.path.join(config.state_dir, "quorum.json"))
        self.store, self.membership = open_backends(config, pm, wait_every=self.heartbeat)
        self.node = config.data.get("node") or self.membership.local_node() or config.node
        self.fencer = Fencer(config, pm, self.store, self.node, clock)
        self.operator = OperatorFollower(self.node, logging.getLogger("omha.operator"))
        self.fitness = Fitness(pm, self.node, config)
        self.cltab = Cltab(filename="cltab")
        self.hactl: dict[str, str] = {}
        self.versions: dict[str, str | None] = dict.fromkeys(DOCUMENTS)
        self.doc_errors: dict[str, list[str]] = {}
        self.init: Any = None
        self.failed: dict[str, Failed] = {}
        self.waiting: dict[str, float] = {}
        self.seen_holder: dict[str, str] = {}
        self.reported_lost: set[tuple[str, str]] = set()
        self.at_level: frozenset[str] = frozenset()
        self.statuses: dict[str, NodeStatus] = {}
        self.problems: dict[str, str] = {}
        self.last_view: dict[str, Any] = {}
        self.store_error: str | None = None
        self.started = self.clock()
        self.wake = asyncio.Event()
        self.fencer.on_fenced = self.wake.set  # take over at once, not at the next heartbeat
        self.stopping = asyncio.Event()
        #: status writes one at a time, never older than the last written (see :meth:`_write_status`)
        self._status_lock = threading.Lock()
        self._written_seq = 0
        self._watch: asyncio.Future[None] | None = None
        #: monotonic time of the last complete cycle (store read, decisions, status published)
        self.last_ok = self.clock()
        self.isolated = False
        #: set when another daemon turned out to publish as this node: stop everything and exit non-zero
        self.duplicate: str | None = None
        #: incarnations whose status under this node name is ours: this one, and until our first publication the
        #: dead predecessor found at start-up (should it come back to life and publish again, it is a duplicate)
        self.own_incarnations = {self.incarnation}
        # alert agents ([[alerts]]): fencing through the notification hooks, nodes and groups by observe()
        self.alerts = start_alerts(config, pm, self.node)

    # -- life cycle -------------------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until SIGTERM/SIGINT/SIGQUIT or ``omha shutdown``; stop every local group before returning."""
        from omha_core.init import LocalInit
        from omha_core.init.owners import scope_of

        loop = asyncio.get_running_loop()
        # SIGTERM, SIGINT and SIGQUIT: the graceful stop; SIGHUP: re-read cltab and hactl now (signals.py)
        install_signal_handlers(loop, self.stopping, self.wake)
        # before publishing anything or touching a claim: is another daemon already this node?
        previous = await self._wait_out_previous()
        if self.stopping.is_set():
            return 0
        if previous is not None:
            self.own_incarnations.add(previous.incarnation)
        self.started = self.clock()  # settle from now: the wait above heard nothing from the others
        await self._adopt_documents()
        self.init = LocalInit(
            self.cltab,
            options=self.config.section("init"),
            logger=logging.getLogger("omha.init"),
            env={"OMHA_NODE": self.node, "OMHA_CLUSTER": self.config.cluster_name, CLASSES_ENV: classes_env(self.pm)},
            config_path=self.config.path if os.path.exists(self.config.path) else None,
            on_change=self.wake.set,
            # this node's leftovers only: other nodes of a local cluster share the machine's processes
            scope=scope_of(self.node, os.path.abspath(self.config.state_dir)),
        )
        server = await self._start_control()  # first: refuses to start when another daemon answers on it
        await self.init.start()
        log.info("node %s up (incarnation %s, store %s)", self.node, self.incarnation, type(self.store).__name__)
        observe = Observability(self)  # systemd READY/WATCHDOG/STATUS, metrics, status page
        watchdog = asyncio.ensure_future(self._watchdog())
        try:
            while not self.stopping.is_set():
                begun = self.clock()
                got_through = False  # systemd's watchdog is pinged only when the pass gets through
                try:
                    await self.cycle()
                    got_through = True
                except StoreError as exc:
                    self._store_failed(str(exc))
                    got_through = True  # the loop runs; the store does not, and a restart would not fix it
                except Exception:
                    log.exception("cycle failed; retrying next heartbeat")
                observe.cycle_done(begun, got_through)
                await self._sleep(begun)
        finally:
            watchdog.cancel()
            observe.stopping()
            await self._shutdown(server)
            observe.close()
        return 1 if self.duplicate or not self.stopped_cleanly else 0

    async def _wait_out_previous(self) -> Any:
        """:func:`wait_out_previous`, retried every heartbeat while the store fails (nothing runs here yet, so
        waiting is safe; starting without the check is not): a store that is down at boot is not a crash."""
        while not self.stopping.is_set():
            try:
                return await asyncio.to_thread(
                    wait_out_previous, self.store, self.node, self.dead_after, self.heartbeat / 2
                )
            except DuplicateNode:
                raise
            except Exception as exc:  # StoreError, or a backend plugin's bug
                self._store_failed(
                    str(exc) if isinstance(exc, StoreError) else f"backend failed: {type(exc).__name__}: {exc}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.heartbeat)
        return None

    async def _sleep(self, begun: float) -> None:
        # ``wake`` was cleared when the cycle began: a local change during the cycle starts the next one at once
        await asyncio.sleep(max(0.0, MIN_CYCLE - (self.clock() - begun)))
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        ]
        if type(self.store).wait_for_change is not Store.wait_for_change:
            if self._watch is None or self._watch.done():
                self._watch = asyncio.ensure_future(asyncio.to_thread(self.store.wait_for_change, self.heartbeat))
            waits.append(self._watch)
        timeout = self.heartbeat
        if (deadline := self.liveness.next_deadline()) is not None:  # judge a silent node at its deadline
            timeout = min(timeout, max(MIN_CYCLE, deadline - self.clock() + 0.005))
        _done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            if fut is not self._watch:
                fut.cancel()

    async def _shutdown(self, server: asyncio.AbstractServer | None) -> None:
        log.info("shutting down: stopping every local group")
        self.shutting_down = True
        beating = asyncio.ensure_future(self._beat_while_stopping())
        try:
            if self.init is not None:
                await self.init.shutdown()
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        self.groups_stopped = True
        holding = self._still_holding()
        if holding:
            log.error(
                "could not stop %s: keeping the claims, so that the others fence this node before taking over",
                ", ".join(sorted(holding)),
            )
        self.stopped_cleanly = not holding  # every local process is gone: nobody needs to fence this node now
        await self.fencer.close()
        with contextlib.suppress(Exception):
            await self._release_claims(keep=holding)
        with contextlib.suppress(Exception):
            await self._publish()
        if server is not None:
            server.close()
            with contextlib.suppress(OSError):
                os.unlink(self.config.socket_path)
        with contextlib.suppress(Exception):
            self.membership.close()
            self.store.close()
        self.alerts.final(self._published_groups(), self.hactl)  # the groups as stopped
        log.info("node %s stopped", self.node)

    shutting_down = False
    #: the init's shutdown is over: what is not still held is stopped
    groups_stopped = False
    stopped_cleanly = False

    async def _beat_while_stopping(self) -> None:
        """Keep heartbeating while the groups stop, which may take longer than ``dead_after``: the others must
        not declare this node lost and take over groups it is still stopping (the claims are kept until then)."""
        while True:
            try:
                await asyncio.to_thread(self.membership.heartbeat)
                await self._publish()
            except Exception as exc:
                log.warning("while stopping: %s", exc)
            await asyncio.sleep(self.heartbeat)

    def _still_holding(self) -> set[str]:
        """After the init's shutdown: the groups whose stop failed (their resources may still be held)."""
        if self.init is None:
            return set()
        return {g for g, st in self.init.status().items() if st.get("state") in ("FAILED", "STOPPING")}

    async def _release_claims(self, keep: set[str]) -> None:
        """Release this node's claims but those of ``keep``. A duplicate daemon under our name may still run the
        groups of our claims: then none is released, and the others break them only after fencing this node."""
        if self.duplicate:
            return
        claims = await asyncio.to_thread(self.store.claims)
        for group, held in claims.items():
            if held.get("node") == self.node and group not in keep:
                await asyncio.to_thread(self.store.release_claim, group, self.node)

    async def _watchdog(self) -> None:
        """Stop every local group when this node can no longer prove it is a member, or when no cycle has
        completed for ``isolate_after`` seconds (default ``dead_after / 2``).

        A node that cannot read or publish through the store (NFS hung, etcd unreachable, lease lost) is declared
        lost by the others ``dead_after`` after its last publication, and they take its groups over; it must have
        stopped them by then, so it starts stopping half-way. The check runs beside the cycle, so a store call
        that hangs cannot keep the groups running either.
        """
        while True:
            await asyncio.sleep(min(self.heartbeat, self.isolate_after / 4))
            silent = self.clock() - self.last_ok
            try:
                member = self.membership.is_member()
            except Exception:
                member = False
            if (silent <= self.isolate_after and member) or self.init is None:
                continue
            active = [g for g, s in self.init.status().items() if s.get("level") not in (None, STOP_LEVEL)]
            if not self.isolated:
                why = (
                    "this node is no longer a member (lease lost)"
                    if not member
                    else f"no contact with the store for {silent:.1f} s"
                    f" ({self.store_error or 'store calls do not return'})"
                )
                log.error("%s: stopping every local group (%s)", why, ", ".join(active) or "none running")
                self.isolated = True
            # cleanup entries only while the others cannot yet have declared this node lost and taken over
            cleanup = member and silent < self.dead_after
            for group in active:
                self.init.tell(group, STOP_LEVEL, cleanup=cleanup)

    def _store_failed(self, message: str) -> None:
        if self.store_error != message:
            log.error("store: %s", message)
        self.store_error = message

    # -- one cycle ----------------------------------------------------------------------------------------
    async def cycle(self) -> None:
        """One pass of the decision loop (see the module docstring)."""
        self.wake.clear()
        try:
            await asyncio.to_thread(self.membership.heartbeat)
            raw, claims, records, up, member = await asyncio.to_thread(self._read_cluster)
        except StoreError:
            raise
        except Exception as exc:  # a backend plugin's bug is a store failure (the watchdog isolates), not a crash
            raise StoreError(f"backend failed: {type(exc).__name__}: {exc}") from exc
        self.store_error = None
        if clash := impostor(raw, self.node, self.own_incarnations):
            self._duplicate_found(clash)
            return
        now = self.clock()
        self._observe(raw)
        alive = {self.node} | {n for n in self.statuses if n != self.node and self._alive(n, up)}
        peers = set(self.statuses) - {self.node}  # two_node: the other node, as far as it ever published
        have_quorum = self.quorum.update(len(alive), bool(peers) and all(map(self.fencer.covered, peers))) and member
        await self._adopt_documents()
        await asyncio.to_thread(self.operator.read, self.store)
        for group in self.operator.cleanups_due():
            clean_up(group, self.failed, self.init, log)
        holders = {g: c.get("node", "?") for g, c in claims.items()}

        lost = self._lost_holding_groups(alive, holders)
        fenced = self.fencer.step(lost, alive, records, have_quorum and self._fresh_quorum(alive, up, peers))
        for node in fenced:
            if claim_breaker(node, records, alive) != self.node:
                continue  # the others wait for the breaker: the claim stays theirs to see until it is gone
            for group, holder in list(holders.items()):
                if holder == node:
                    log.warning("%s: breaking %s's claim (fenced)", group, node)
                    await asyncio.to_thread(self.store.break_claim, group, node)
                    del holders[group]

        view = self._view(alive, fenced, holders, have_quorum and not self.shutting_down, now)
        decision = decide(view)
        await self._act(decision.actions, holders)
        self._bookkeeping(view, decision.why, now)
        # one snapshot of the init after this cycle's actions, for the alerts and the published status alike
        local = self.init.status()
        self.alerts.observe(alive, local, self.hactl)  # queued for a background thread
        self.last_view = {
            "nodes": self._node_states(alive, fenced),
            "quorum": {"have": have_quorum, "member": member, "detail": self.quorum.reason},
            "why": decision.why,
            "claims": holders,
        }
        await self._publish(local)
        self.last_ok = self.clock()
        if self.isolated:
            log.warning("contact with the store is back")
            self.isolated = False

    def _duplicate_found(self, message: str) -> None:
        """Another daemon publishes as this node: both cannot be trusted with its claims, so stop everything
        here and exit; the others see this node lost and take its groups over after fencing it."""
        if self.duplicate is None:
            log.error("%s: stopping every local group and exiting; give each node its own node name", message)
        self.duplicate = message
        self.stopping.set()

    def _fresh_quorum(self, alive: set[str], up: set[str] | None, peers: set[str]) -> bool:
        """Quorum counting only the nodes heard from within ``isolate_after``: what fencing a node and taking
        over its groups need, beyond the quorum that keeps groups running.

        A node whose view of the store stopped changing (a stale copy, a cache, its own writes landing apart from
        the others') sees every peer go silent at once, but not lost at once: the first is lost ``dead_after``
        after its last heartbeat, while the rest still count as alive for up to a heartbeat more. Counted that
        way, the node would have quorum for that moment and fence a healthy peer (the fault campaign found it,
        with one node's shared directory full). A peer silent for more than ``isolate_after`` is, by this
        node's own rule, out of contact and stopping its groups: it does not vote for a fence. A membership
        layer that is read from a quorum of its own (etcd) cannot be stale that way, and its view decides."""
        if up is not None and self.membership.authoritative:
            return True
        fresh = {self.node} | {
            n for n in alive if n != self.node and (self.liveness.silent_for(n) or 0.0) < self.isolate_after
        }
        return self.quorum.would_hold(len(fresh), bool(peers) and all(map(self.fencer.covered, peers)))

    def _alive(self, node: str, up: set[str] | None) -> bool:
        """Is ``node`` alive? Heartbeats decide, unless the membership layer's view is proof of life."""
        if up is not None and self.membership.authoritative:
            return node in up
        return self.liveness.alive(node) and (up is None or node in up)

    def _read_cluster(
        self,
    ) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]], dict[str, Mapping[str, Any]], set[str] | None, bool]:
        """Everything a cycle reads from the store and membership (in a worker thread).

        The members are read before the claims: a node stopping cleanly releases its claims before it leaves,
        so one seen gone here holds no claim read after, and is not mistaken for lost while holding a group
        (and fenced) when it stops between the two reads."""
        up = self.membership.up_nodes()
        member = self.membership.is_member()
        return self.store.statuses(), self.store.claims(), self.store.fence_records(), up, member

    def _observe(self, raw: Mapping[str, Any]) -> None:
        for node, doc in raw.items():
            if node == self.node:
                continue
            parsed = parse_status(node, doc)
            if isinstance(parsed, StatusProblem):
                if self.problems.get(node) != parsed.message:
                    log.warning("ignoring status of %s: %s", node, parsed.message)
                self.problems[node] = parsed.message
                continue
            self.problems.pop(node, None)
            self.statuses[node] = parsed
            self.liveness.observe(node, parsed.incarnation, parsed.seq)

    def _lost_holding_groups(self, alive: set[str], holders: Mapping[str, str]) -> dict[str, str]:
        """The lost nodes that held groups, by incarnation (:func:`~omha_core.rules.lost_holding_groups`); each
        lost incarnation is logged and notified once."""
        lost = lost_holding_groups(self.statuses, alive, holders)
        for node, found in lost.items():
            key = (node, found.incarnation)
            if key not in self.reported_lost:
                self.reported_lost.add(key)
                log.warning("node %s lost while holding %s", node, ", ".join(found.groups))
                hooks.notify_node_lost(self.pm, node=node, observer=self.node, groups=list(found.groups))
        return {node: found.incarnation for node, found in lost.items()}

    def _view(self, alive: set[str], fenced: set[str], holders: dict[str, str], quorum: bool, now: float) -> View:
        local = {g: Instance(level, state) for g, (level, state) in self.init.levels().items()}
        unfit = self._fitness()
        failed = self._failed(now)
        nodes = {self.node: NodeView(self.node, groups=local, unfit=unfit, failed=failed, quorum=quorum)}
        for name, st in self.statuses.items():
            if name == self.node:
                continue
            nodes[name] = NodeView(
                name,
                alive=name in alive,
                fenced=name in fenced,
                groups=st.groups,
                unfit=st.unfit,
                failed=st.failed,
                quorum=st.quorum and not st.shutting_down,
            )
        return View(
            me=self.node,
            nodes=nodes,
            wanted=self.hactl,
            cltab=self.cltab,
            claims=holders,
            quorum=quorum,
            waiting={g: now - t for g, t in self.waiting.items()},
            spread_delay=max(2 * self.heartbeat, 0.5),
            settling=settling(now, self.started, self.settle),
            prefer=self.operator.state.prefer,
            standby=self.operator.state.standby,
        )

    def _fitness(self) -> dict[str, str]:
        return self.fitness.check(self.hactl)

    def _failed(self, now: float) -> dict[str, str]:
        self.failed, expired = expire_failed(self.failed, now, self.failed_retry)
        for group, (since, _) in expired.items():
            log.info("%s: failed here %.0f s ago; this node is a candidate again", group, now - since)
        return {g: reason for g, (_, reason) in self.failed.items()}

    async def _act(self, actions: list[Action], holders: dict[str, str]) -> None:
        refused: set[str] = set()
        for action in actions:
            group = action.group
            if action.kind == "claim":
                if await asyncio.to_thread(self.store.claim, group, self.node, self.incarnation):
                    holders[group] = self.node
                else:
                    refused.add(group)
                    log.info("%s: claim lost to another node", group)
            elif action.kind == "release":
                await asyncio.to_thread(self.store.release_claim, group, self.node)
                holders.pop(group, None)
            elif action.kind == "failed":
                log.warning("%s: %s on this node; letting another node try", group, action.reason)
                self.failed[group] = Failed(self.clock(), action.reason)
            elif action.kind == "tell" and action.level is not None:
                if group in refused:
                    continue
                held_elsewhere = action.level == STOP_LEVEL and holders.get(group) not in (None, self.node)
                if held_elsewhere:  # its cleanup entries are not run here: they could undo the holder's work
                    log.warning("%s: stopping here: %s", group, action.reason)
                log.info("%s: -> %s (%s)", group, action.level, action.reason)
                self.init.tell(group, action.level, cleanup=not held_elsewhere)

    def _bookkeeping(self, view: View, why: Mapping[str, str], now: float) -> None:
        self.waiting = waiting_since(self.waiting, view, now)
        moves = track_moves(view, self.at_level, self.seen_holder)
        self.at_level, self.seen_holder = moves.at_level, dict(moves.seen_holder)
        for group, previous, level in moves.arrived:
            log.info("%s: at level %s here%s", group, level, f" (moved from {previous})" if previous else "")
            hooks.notify_group_moved(self.pm, group=group, from_node=previous, to_node=self.node, level=level)

    def _node_states(self, alive: set[str], fenced: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in sorted({self.node, *self.statuses, *self.problems}):
            silent = 0.0 if name == self.node else self.liveness.silent_for(name)
            state = "up" if name in alive else "lost"
            fencing = self.fencer.state.get(name)
            if name not in alive and fencing:
                state = str(fencing.get("state", state))
            elif name not in alive and self.statuses.get(name) and self.statuses[name].shutting_down:
                state = "stopped"
            out[name] = {"state": state, "silent": None if silent is None else round(silent, 1)}
            if fencing and name not in alive:
                out[name]["fencing"] = fencing
            if name in self.problems:
                out[name]["problem"] = self.problems[name]
        return out

    # -- documents ----------------------------------------------------------------------------------------
    async def _adopt_documents(self) -> None:
        """Adopt the newest valid cltab and hactl; refuse invalid versions, keeping the last good one.

        Reading and validating run in a worker thread (store I/O, plugins' checks); applying a new version runs
        here, on the event loop, because reloading the init starts and stops processes."""
        found = await asyncio.to_thread(self._newest_valid_documents)
        for name, (chosen, errors, current_is_newest) in found.items():
            if chosen is not None:
                doc, parsed = chosen
                self._apply(parsed)
                self.versions[name] = doc.version
                with contextlib.suppress(Exception):  # only a record of what runs: a failure costs nothing now
                    await asyncio.to_thread(self.store.adopt, name, doc)
                log.info("adopted %s version %s from %s", name, doc.version, doc.origin or "store")
            if errors:
                if self.doc_errors.get(name) != errors:
                    kept = "the last good version keeps running" if self.versions[name] else "nothing adopted yet"
                    log.error("refused invalid %s (%s):\n  %s", name, kept, "\n  ".join(errors))
                self.doc_errors[name] = errors
            elif current_is_newest or chosen is not None:
                self.doc_errors.pop(name, None)

    def _newest_valid_documents(
        self,
    ) -> dict[str, tuple[tuple[Versioned, Cltab | dict[str, str]] | None, list[str], bool]]:
        """Per document (in a worker thread): the newest valid version not adopted yet with its parsed form
        (None when the one adopted is still the newest valid), the errors of newer invalid versions, and
        whether the version adopted is the newest in the store."""
        out: dict[str, tuple[tuple[Versioned, Cltab | dict[str, str]] | None, list[str], bool]] = {}
        for name in DOCUMENTS:
            try:
                candidates = self.store.documents(name)
            except Exception as exc:  # a store failure, or a backend plugin's bug: the last good version runs on
                out[name] = (None, [str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"], False)
                continue
            errors: list[str] = []
            chosen = None
            for doc in candidates:
                if doc.version == self.versions[name]:
                    break
                try:
                    parsed = check_document(name, doc.text, doc.origin or name, self.pm, self.config)
                except ParseError as exc:
                    errors.extend(str(p) for p in exc.problems)
                    continue
                except OmhaError as exc:
                    errors.append(f"{doc.origin or name}: {exc}")
                    continue
                chosen = (doc, parsed)
                break
            newest = bool(candidates) and candidates[0].version == self.versions[name]
            out[name] = (chosen, errors, newest)
        return out

    def _apply(self, parsed: Cltab | dict[str, str]) -> None:
        self.failed.clear()
        if isinstance(parsed, Cltab):
            self.cltab = parsed
            if self.init is not None:
                self.init.reload(parsed)
        else:
            self.hactl = parsed

    # -- status -------------------------------------------------------------------------------------------
    def status_document(self, local: dict[str, Any] | None = None) -> dict[str, Any]:
        """This node's status as published; ``local`` is the init's status when the caller has just taken it."""
        return {
            "node": self.node,
            "incarnation": self.incarnation,
            "seq": self.seq,
            "time": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "version": __version__,
            "quorum": bool(self.last_view.get("quorum", {}).get("have", False)),
            "shutting_down": self.shutting_down,
            "stopped": self.stopped_cleanly,
            "containment": self.init.containment if self.init is not None else None,
            "groups": self._published_groups(local),
            "unfit": self._fitness() if self.hactl else {},
            "plugin_errors": dict(self.fitness.errors),
            "failed": {g: r for g, (_, r) in self.failed.items()},
            "config": {
                "cltab": self.versions["cltab"],
                "hactl": self.versions["hactl"],
                "errors": [e for errs in self.doc_errors.values() for e in errs],
            },
            "view": self.last_view,
            "store_error": self.store_error,
        }

    def _published_groups(self, local: dict[str, Any] | None = None) -> dict[str, Any]:
        """The init's status; after the shutdown every group that stopped is reported at level ``stop``, so that
        the others see a node that left with nothing running rather than a lost node holding groups (a group
        whose stop failed is reported as it is: the others fence this node before taking it over)."""
        groups: dict[str, Any] = local if local is not None else self.init.status() if self.init is not None else {}
        if self.groups_stopped:
            holding = self._still_holding()
            groups = {
                g: st if g in holding else {**st, "level": STOP_LEVEL, "state": "DONE"} for g, st in groups.items()
            }
        return groups

    async def _publish(self, local: dict[str, Any] | None = None) -> None:
        self.seq += 1
        doc = self.status_document(local)
        await asyncio.to_thread(self._write_status, doc)
        self.own_incarnations = {self.incarnation}

    def _write_status(self, doc: dict[str, Any]) -> None:
        """Write ``doc`` unless a newer status of ours is already written (in a worker thread).

        Cancelling a task does not stop the store call it runs in a thread: the shutdown cancels the beat that
        publishes while the groups stop, and that beat's publication, still in flight, could land after the
        final status and leave the store saying "shutting down, group still active", so that the others fence
        a node that stopped cleanly. Writes go one at a time and never go back to an older ``seq``."""
        with self._status_lock:
            if doc["seq"] <= self._written_seq:
                return
            self.store.publish(self.node, doc)
            self._written_seq = doc["seq"]

    # -- control socket -----------------------------------------------------------------------------------
    async def _start_control(self) -> asyncio.AbstractServer | None:
        path = self.config.socket_path
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if await _answers(path):
            raise DuplicateNode(f"control socket {path} is in use by another running omha daemon")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            return await asyncio.start_unix_server(self._control, path=path)
        except OSError as exc:
            log.error("control socket %s: %s (omha shutdown will not reach this daemon)", path, exc.strerror)
            return None

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            request = json.loads(line or b"{}")
            cmd = request.get("cmd")
            if cmd == "status":
                reply: dict[str, Any] = {"ok": True, "status": self.status_document()}
            elif cmd == "shutdown":
                reply = {"ok": True}
                self.stopping.set()
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError, ValueError) as exc:
            log.debug("control connection: %s", exc)
        finally:
            writer.close()


async def _answers(path: str) -> bool:
    """Does a server listen on the unix socket ``path``? (A stale socket file refuses the connection.)"""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def run_daemon(config: Config, pm: pluggy.PluginManager) -> int:
    """Entry point of ``omha daemon``."""
    setup_logging(config, config.data.get("node") or config.node)
    try:
        return asyncio.run(Daemon(config, pm).run())
    except OmhaError as exc:
        log.error("%s", exc)
        return 1
