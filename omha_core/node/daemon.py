"""The node daemon: a thin shell around the pure decisions, running observe -> decide -> act -> publish.

One asyncio loop runs everything: the local init (processes of this node's groups), the control socket, and
the cycle below. Store I/O runs in worker threads so a slow store never blocks process supervision.

Each cycle (:meth:`Daemon.cycle`):

1. observe: heartbeat the membership layer and read the cluster (statuses, claims, fence records); judge
   liveness (changing ``seq`` on our monotonic clock) and quorum; adopt the newest *valid* ``cltab`` /
   ``hactl`` (an invalid one is refused; the last good one keeps running);
2. fence lost nodes that held groups, and break their claims once fenced;
3. decide: :func:`omha_core.decide.decide` on the assembled :class:`~omha_core.decide.View`;
4. act: carry out its actions (claims, releases, the local init), and keep what the decisions carry over to
   the next cycle (:class:`Memory`, computed by :mod:`omha_core.rules`);
5. publish this node's status (``seq`` + 1).

The cycle runs every ``[timing] heartbeat`` seconds and also at once when a local group changes state, so a
plan -> test -> run sequence does not wait for heartbeats.

Around it, each collaborator owns its state: :class:`~omha_core.node.peers.Peers` (the other nodes),
:class:`~omha_core.node.documents.Documents` (cltab and hactl), :class:`~omha_core.node.contact.Contact` (the
store's reach, the isolation watchdog), :class:`~omha_core.node.lifecycle.Shutdown`,
:class:`~omha_core.node.control.ControlSocket`, and the :class:`~omha_core.fencing.Fencer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import pluggy

from omha_core import hooks
from omha_core.agent import CLASSES_ENV, classes_env
from omha_core.alerts import start_alerts
from omha_core.backends import Store
from omha_core.cltab import Cltab
from omha_core.config import Config
from omha_core.decide import Action, NodeView, View, decide
from omha_core.errors import OmhaError, StoreError
from omha_core.fencing import Fencer
from omha_core.fitness import Fitness
from omha_core.logsetup import setup_logging
from omha_core.node.act import act, break_claims
from omha_core.node.connect import open_backends
from omha_core.node.contact import Contact
from omha_core.node.control import ControlSocket
from omha_core.node.documents import Documents, Parsed
from omha_core.node.lifecycle import Shutdown, wait_out_previous_incarnation
from omha_core.node.peers import Peers, Reading
from omha_core.node.publish import StatusWriter, published_groups, status_document
from omha_core.node.state import Memory, Timing
from omha_core.observability import Observability
from omha_core.operator import OperatorFollower, clean_up
from omha_core.quorum import Quorum
from omha_core.rules import expire_failed, settling, track_moves, waiting_since
from omha_core.signals import install_signal_handlers
from omha_core.uniqueness import impostor, lock_state_dir

log = logging.getLogger("omha.daemon")

#: shortest time between two cycles when local state changes quickly (a respawn storm)
MIN_CYCLE = 0.02


class Daemon:
    """One node of the cluster.

    :param clock: this node's monotonic clock (a seam: the simulation in tests/sim/ runs nodes on simulated time).
    :param incarnation: this run's identity in the cluster (default: a new random one).
    """

    def __init__(
        self,
        config: Config,
        pm: pluggy.PluginManager,
        clock: Callable[[], float] = time.monotonic,
        incarnation: str | None = None,
    ) -> None:
        self.config, self.pm, self.clock = config, pm, clock
        self.timing = t = Timing.from_config(config.timing)
        self.incarnation = incarnation or uuid.uuid4().hex[:12]
        self.seq = 0
        self._lock_fd = lock_state_dir(config.state_dir)  # one daemon per state directory, for life
        self.quorum = Quorum(config.section("quorum"), os.path.join(config.state_dir, "quorum.json"))
        self.store, self.membership = open_backends(config, pm, wait_every=t.heartbeat)
        self.node: str = config.data.get("node") or self.membership.local_node() or config.node
        self.peers = Peers(self.node, self.store, self.membership, pm, t.dead_after, t.isolate_after, clock)
        self.fencer = Fencer(config, pm, self.store, self.node, clock)
        self.operator = OperatorFollower(self.node, logging.getLogger("omha.operator"))
        self.fitness = Fitness(pm, self.node, config)
        self.documents = Documents(self.store, pm, config, self._adopted)
        self.contact = Contact(clock, self.membership, t.heartbeat, t.dead_after, t.isolate_after)
        self.writer = StatusWriter(self.store, self.node)  # status writes in order (see StatusWriter)
        self.shutdown = Shutdown(self.node, self.store, self.membership, t.heartbeat, self._publish)
        self.stopping = asyncio.Event()
        self.control = ControlSocket(config.socket_path, self.status_document, self.stopping)
        self.init: Any = None
        self.memory = Memory(started=clock())
        #: what the last cycle saw (published in status; ``omha status`` shows it)
        self.last_view: dict[str, Any] = {}
        self.wake = asyncio.Event()
        self.fencer.on_fenced = self.wake.set  # take over at once, not at the next heartbeat
        self._watch: asyncio.Future[None] | None = None
        #: set when another daemon turned out to publish as this node: stop everything and exit non-zero
        self.duplicate: str | None = None
        #: incarnations whose status under this node name is ours: this one, and until our first publication the
        #: dead predecessor found at start-up (should it come back to life and publish again, it is a duplicate)
        self.own_incarnations = {self.incarnation}
        # alert agents ([[alerts]]): fencing through the notification hooks, nodes and groups by observe()
        self.alerts = start_alerts(config, pm, self.node)

    @property
    def cltab(self) -> Cltab:
        """The cltab this node runs."""
        return self.documents.cltab

    @property
    def hactl(self) -> dict[str, str]:
        """The hactl this node runs: group -> wanted level."""
        return self.documents.hactl

    # -- life cycle -------------------------------------------------------------------------------------
    async def run(self) -> int:
        """Run until SIGTERM/SIGINT/SIGQUIT or ``omha shutdown``; stop every local group before returning."""
        from omha_core.init import LocalInit
        from omha_core.init.owners import scope_of

        loop = asyncio.get_running_loop()
        # SIGTERM, SIGINT and SIGQUIT: the graceful stop; SIGHUP: re-read cltab and hactl now (signals.py)
        install_signal_handlers(loop, self.stopping, self.wake)
        # before publishing anything or touching a claim: is another daemon already this node?
        t = self.timing
        previous = await wait_out_previous_incarnation(
            self.store, self.node, t.dead_after, t.heartbeat, self.stopping, self.contact.store_failed
        )
        if self.stopping.is_set():
            return 0
        if previous is not None:
            self.own_incarnations.add(previous.incarnation)
        self.memory.started = self.clock()  # settle from now: the wait above heard nothing from the others
        await self.documents.adopt()
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
        await self.control.start()  # first: refuses to start when another daemon answers on it
        await self.init.start()
        log.info("node %s up (incarnation %s, store %s)", self.node, self.incarnation, type(self.store).__name__)
        observe = Observability(self)  # systemd READY/WATCHDOG/STATUS, metrics, status page
        watchdog = asyncio.ensure_future(self.contact.watch(self.init))
        try:
            while not self.stopping.is_set():
                begun = self.clock()
                got_through = False  # systemd's watchdog is pinged only when the pass gets through
                try:
                    await self.cycle()
                    got_through = True
                except StoreError as exc:
                    self.contact.store_failed(str(exc))
                    got_through = True  # the loop runs; the store does not, and a restart would not fix it
                except Exception:
                    log.exception("cycle failed; retrying next heartbeat")
                observe.cycle_done(begun, got_through)
                await self.sleep(begun)
        finally:
            watchdog.cancel()
            observe.stopping()
            await self._shut_down()
            observe.close()
        return 1 if self.duplicate or not self.shutdown.stopped_cleanly else 0

    async def sleep(self, begun: float) -> None:
        """Until the next cycle: a heartbeat, a local change (``wake``), a change in the store, or the moment a
        silent node is to be judged lost, whichever comes first."""
        # ``wake`` was cleared when the cycle began: a local change during the cycle starts the next one at once
        await asyncio.sleep(max(0.0, MIN_CYCLE - (self.clock() - begun)))
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(self.stopping.wait()),
        ]
        if type(self.store).wait_for_change is not Store.wait_for_change:
            if self._watch is None or self._watch.done():
                self._watch = asyncio.ensure_future(
                    asyncio.to_thread(self.store.wait_for_change, self.timing.heartbeat)
                )
            waits.append(self._watch)
        timeout = self.timing.heartbeat
        if (deadline := self.peers.liveness.next_deadline()) is not None:  # judge a silent node at its deadline
            timeout = min(timeout, max(MIN_CYCLE, deadline - self.clock() + 0.005))
        _done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for fut in pending:
            if fut is not self._watch:
                fut.cancel()

    async def _shut_down(self) -> None:
        """Stop every local group, release the claims of those stopped, publish the final status, leave."""
        holding = await self.shutdown.stop_groups(self.init)
        await self.fencer.close()
        with contextlib.suppress(Exception):
            await self.shutdown.release_claims(keep=holding, duplicate=bool(self.duplicate))
        with contextlib.suppress(Exception):
            await self._publish()
        self.control.close()
        with contextlib.suppress(Exception):
            self.membership.close()
            self.store.close()
        self.alerts.final(self._published_groups(), self.hactl)  # the groups as stopped
        log.info("node %s stopped", self.node)

    # -- one cycle ----------------------------------------------------------------------------------------
    async def cycle(self) -> None:
        """One pass of the decision loop: observe, decide, act, publish (see the module docstring)."""
        self.wake.clear()
        # observe
        seen = await self._read()
        if clash := impostor(seen.statuses, self.node, self.own_incarnations):
            self._duplicate_found(clash)
            return
        now = self.clock()
        self.peers.observe(seen.statuses)
        alive = self.peers.alive(seen.up)
        others = set(self.peers.statuses) - {self.node}  # two_node: the other node, as far as it ever published
        covered = bool(others) and all(map(self.fencer.covered, others))
        have_quorum = self.quorum.update(len(alive), covered) and seen.member
        await self.documents.adopt()
        await asyncio.to_thread(self.operator.read, self.store)
        for group in self.operator.cleanups_due():
            clean_up(group, self.memory.failed, self.init, log)
        holders = {g: c.get("node", "?") for g, c in seen.claims.items()}
        # fence the lost nodes that held groups; break the claims of those fenced
        lost = self.peers.lost_holding_groups(alive, holders)
        fenced = self.fencer.step(
            lost, alive, seen.records, have_quorum and self._fresh_quorum(alive, seen.up, covered)
        )
        await break_claims(fenced, seen.records, alive, holders, me=self.node, store=self.store)
        # decide
        view = self._view(alive, fenced, holders, have_quorum and not self.shutdown.shutting_down, now)
        decision = decide(view)
        # act
        await self._act(decision.actions, holders)
        self._remember(view, now)
        # publish: one snapshot of the init after this cycle's actions, for the alerts and the status alike
        local = self.init.status()
        self.alerts.observe(alive, local, self.hactl)  # queued for a background thread
        self.last_view = {
            "nodes": self.peers.states(alive, self.fencer.state),
            "quorum": {"have": have_quorum, "member": seen.member, "detail": self.quorum.reason},
            "why": decision.why,
            "claims": holders,
        }
        await self._publish(local)
        self.contact.cycle_done()

    async def _read(self) -> Reading:
        """Heartbeat, then read the cluster; a backend plugin's bug counts as a store failure (the watchdog
        isolates this node), not a crash."""
        try:
            seen = await asyncio.to_thread(self.peers.beat_and_read)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"backend failed: {type(exc).__name__}: {exc}") from exc
        self.contact.store_reached()
        return seen

    def _fresh_quorum(self, alive: set[str], up: set[str] | None, covered: bool) -> bool:
        """Quorum counting only the nodes heard from lately (:meth:`Peers.fresh`): what fencing a node and
        taking over its groups need, beyond the quorum that keeps groups running."""
        fresh = self.peers.fresh(alive, up)
        return fresh is None or self.quorum.would_hold(len(fresh), covered)

    def _duplicate_found(self, message: str) -> None:
        """Another daemon publishes as this node: both cannot be trusted with its claims, so stop everything
        here and exit; the others see this node lost and take its groups over after fencing it."""
        if self.duplicate is None:
            log.error("%s: stopping every local group and exiting; give each node its own node name", message)
        self.duplicate = message
        self.stopping.set()

    def _view(self, alive: set[str], fenced: set[str], holders: dict[str, str], quorum: bool, now: float) -> View:
        """Everything :func:`decide` looks at: this node's fresh local state, the others' last statuses, the
        claims as this cycle left them, the documents, the decisions' memory and the operators' orders."""
        local = self.init.levels()
        unfit = self.fitness.check(self.hactl)
        nodes = {self.node: NodeView(self.node, groups=local, unfit=unfit, failed=self._failed(now), quorum=quorum)}
        for name, st in self.peers.statuses.items():
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
            waiting={g: now - t for g, t in self.memory.waiting.items()},
            spread_delay=max(2 * self.timing.heartbeat, 0.5),
            settling=settling(now, self.memory.started, self.timing.settle),
            prefer=self.operator.state.prefer,
            standby=self.operator.state.standby,
        )

    def _failed(self, now: float) -> dict[str, str]:
        """This node's failed tests still remembered at ``now`` (:func:`expire_failed`), by reason."""
        self.memory.failed, expired = expire_failed(self.memory.failed, now, self.timing.failed_retry)
        for group, (since, _) in expired.items():
            log.info("%s: failed here %.0f s ago; this node is a candidate again", group, now - since)
        return {g: reason for g, (_, reason) in self.memory.failed.items()}

    async def _act(self, actions: list[Action], holders: dict[str, str]) -> None:
        """:func:`~omha_core.node.act.act` on this node's store, init and failed tests."""
        await act(
            actions,
            holders,
            me=self.node,
            incarnation=self.incarnation,
            store=self.store,
            init=self.init,
            failed=self.memory.failed,
            clock=self.clock,
        )

    def _remember(self, view: View, now: float) -> None:
        """Keep the waiting timer and the group moves for the next cycle; notify the groups that arrived here."""
        self.memory.waiting = waiting_since(self.memory.waiting, view, now)
        moves = track_moves(view, self.memory.at_level, self.memory.seen_holder)
        self.memory.at_level, self.memory.seen_holder = moves.at_level, dict(moves.seen_holder)
        for group, previous, level in moves.arrived:
            log.info("%s: at level %s here%s", group, level, f" (moved from {previous})" if previous else "")
            hooks.notify_group_moved(self.pm, group=group, from_node=previous, to_node=self.node, level=level)

    def _adopted(self, parsed: Parsed) -> None:
        """A new cltab or hactl became current: forget the failed tests (the cause may be fixed), and reload the
        init with a new cltab."""
        self.memory.failed.clear()
        if isinstance(parsed, Cltab) and self.init is not None:
            self.init.reload(parsed)

    # -- status -------------------------------------------------------------------------------------------
    def status_document(self, local: dict[str, Any] | None = None) -> dict[str, Any]:
        """This node's status as published; ``local`` is the init's status when the caller has just taken it."""
        return status_document(
            node=self.node,
            incarnation=self.incarnation,
            seq=self.seq,
            last_view=self.last_view,
            shutting_down=self.shutdown.shutting_down,
            stopped=self.shutdown.stopped_cleanly,
            containment=self.init.containment if self.init is not None else None,
            groups=self._published_groups(local),
            unfit=self.fitness.latest(self.hactl),
            plugin_errors=self.fitness.errors,
            failed=self.memory.failed,
            versions=self.documents.versions,
            doc_errors=self.documents.errors,
            store_error=self.contact.store_error,
        )

    def _published_groups(self, local: dict[str, Any] | None = None) -> dict[str, Any]:
        """The init's groups (``local`` when just taken) as published (:func:`published_groups`)."""
        groups: dict[str, Any] = local if local is not None else self.init.status() if self.init is not None else {}
        return published_groups(groups, self.shutdown.holding(self.init))

    async def _publish(self, local: dict[str, Any] | None = None) -> None:
        """Publish this node's status with the next ``seq``; from then on a predecessor publishing is a duplicate."""
        self.seq += 1
        doc = self.status_document(local)
        await asyncio.to_thread(self.writer.write, doc)
        self.own_incarnations = {self.incarnation}


def run_daemon(config: Config, pm: pluggy.PluginManager) -> int:
    """Entry point of ``omha daemon``."""
    setup_logging(config, config.data.get("node") or config.node)
    try:
        return asyncio.run(Daemon(config, pm).run())
    except OmhaError as exc:
        log.error("%s", exc)
        return 1
