"""Deterministic simulation of N real node daemons in one process, on simulated time.

Every node is the real :class:`omha_core.node.Daemon` (real decide, fencer, quorum, liveness, claims) whose
cycle, sleep and watchdog run on a :class:`~tests.sim.vtloop.VirtualLoop`. Around them, simulated parts:

- :class:`MemStore`: one in-memory store honouring the Store contract (create-if-absent claims and fence locks,
  compare-and-swap documents); each node reaches it through a :class:`NodeStore` that fails while the node is
  cut off from it, and fails at random at a configurable rate;
- :class:`SimMembership`: up-nodes as the membership layer sees them (a membership split makes sides);
- :class:`SimInit`: the local init; starts and stops take simulated time, may fail, a start may hang;
- :class:`SimFence`: a fence device that succeeds, fails or hangs; a success powers the target off;
- a fault scheduler (:meth:`World.schedule_faults`): crash, freeze, store partition, membership split, clock
  skew, cltab and hactl changes, and a graceful restart (the daemon's own shutdown, then a new incarnation), all
  drawn from one seeded :class:`random.Random`.

Store and device calls, which the daemon runs through :func:`asyncio.to_thread`, run on the simulated loop, so
one seed always gives the same interleaving and the same trace (with a fixed ``PYTHONHASHSEED``: the daemon
iterates over sets of node names). A fast call runs inline; a slow one (a share of the calls, drawn per run)
runs as a task of its own, as a worker thread would: cancelling its caller does not stop it, so it may land
after calls made later.

The invariants, checked at every group start and every fence: one node holding a group at a time; a group
taken over from a node that did not stop it cleanly only after that node was fenced; no fence call started
from a membership minority (a call started with quorum may land after a split began); no fence of a node whose
daemon stopped cleanly and has not run since; and, checked at the end, every wanted group at its level within
``BOUND`` seconds after the last fault healed.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import random
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from omha_core import fencing, hookimpl
from omha_core.backends import Membership, Store, Versioned
from omha_core.config import Config, validate_config
from omha_core.decide import DONE, FAILED, PASSED, STARTING, STOPPING, TEST, Instance
from omha_core.errors import ConflictError, StoreError
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.hactl import STOP_LEVEL
from omha_core.node import Daemon
from omha_core.plugins import get_plugin_manager
from omha_core.uniqueness import wait_out_previous

#: seconds after the last fault heals by which every wanted group must run at its level
BOUND = 90.0
HEARTBEAT, DEAD_AFTER = 0.5, 2.0
#: the node whose code is running now (each node's tasks run in their own context)
CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("sim_node", default="")


class Violation(AssertionError):
    """An invariant broke; the message names it, the run's seed and the trace."""


@dataclass
class Params:
    """One run's shape."""

    nodes: int = 5
    groups: int = 20
    duration: float = 600.0  # simulated seconds
    faults: int = 6
    store_fail_rate: float = 0.002
    store_delay: float = 0.04


# -- the store ---------------------------------------------------------------------------------------------


class MemStore:
    """The cluster's one store, in memory. Writes are atomic: the loop runs one call at a time."""

    def __init__(self) -> None:
        self.status: dict[str, Mapping[str, Any]] = {}
        self.docs: dict[str, list[Versioned]] = {}
        self.claim: dict[str, dict[str, str]] = {}
        self.locks: dict[tuple[str, str], str] = {}
        self.records: dict[str, Mapping[str, Any]] = {}
        self.version = 0

    def put(self, name: str, text: str, expect: str | None) -> str:
        current = self.docs.get(name, [])
        have = current[0].version if current else ""
        if expect is not None and expect != have:
            raise ConflictError(f"{name}: version {have!r}, expected {expect!r}")
        self.version += 1
        self.docs[name] = [Versioned(text, str(self.version), self.version, "sim"), *current][:3]
        return str(self.version)


class NodeStore(Store):
    """One node's handle on the :class:`MemStore`: fails while the node is cut off, or at random."""

    def __init__(self, config: Config, world: World, node: str) -> None:
        super().__init__(config)
        self.world, self.node, self.mem = world, node, world.store

    def _reach(self) -> None:
        w = self.world
        if self.node in w.cut:
            raise StoreError("simulated: store unreachable")
        if w.faulty and w.params.store_fail_rate and w.rng.random() < w.params.store_fail_rate:
            raise StoreError("simulated: store call failed")

    def publish(self, node: str, status: Mapping[str, Any]) -> None:
        self._reach()
        self.mem.status[node] = status
        if status.get("incarnation") != self.world.clean.get(node, status.get("incarnation")):
            del self.world.clean[node]  # a later incarnation runs

    def statuses(self) -> dict[str, Mapping[str, Any] | Exception]:
        self._reach()
        return dict(self.mem.status)

    def documents(self, name: str) -> list[Versioned]:
        self._reach()
        return list(self.mem.docs.get(name, []))

    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        self._reach()
        return self.mem.put(name, text, expect_version)

    def claim(self, group: str, node: str, incarnation: str) -> bool:
        self._reach()
        held = self.mem.claim.setdefault(group, {"node": node, "incarnation": incarnation})
        return held["node"] == node

    def claims(self) -> dict[str, Mapping[str, Any]]:
        self._reach()
        return dict(self.mem.claim)

    def release_claim(self, group: str, node: str) -> None:
        self._reach()
        if self.mem.claim.get(group, {}).get("node") == node:
            del self.mem.claim[group]

    def break_claim(self, group: str, holder: str) -> None:
        self._reach()
        if self.mem.claim.get(group, {}).get("node") == holder:
            del self.mem.claim[group]
            self.world.trace(f"{self.node} breaks {holder}'s claim on {group}")

    def fence_lock(self, node: str, incarnation: str, fencer: str) -> bool:
        self._reach()
        return self.mem.locks.setdefault((node, incarnation), fencer) == fencer

    def fence_lock_holder(self, node: str, key: str) -> str | None:
        self._reach()
        return self.mem.locks.get((node, key))

    def put_fence_record(self, node: str, record: Mapping[str, Any]) -> None:
        self._reach()
        self.mem.records[node] = record

    def fence_records(self) -> dict[str, Mapping[str, Any]]:
        self._reach()
        return dict(self.mem.records)


class SimMembership(Membership):
    """Heartbeats decide; during a membership split a node sees only its own side up."""

    def __init__(self, config: Config, store: Store, world: World, node: str) -> None:
        super().__init__(config, store)
        self.world, self.node = world, node

    def local_node(self) -> str | None:
        return self.node

    def up_nodes(self) -> set[str] | None:
        return self.world.side(self.node)


# -- the local init ----------------------------------------------------------------------------------------


class SimInit:
    """What the daemon needs of :class:`omha_core.init.LocalInit`, with starts and stops on simulated time."""

    containment = "sim"

    def __init__(self, world: World, node: str, groups: list[str], on_change: Callable[[], None]) -> None:
        self.world, self.node, self.on_change = world, node, on_change
        self.groups: dict[str, dict[str, Any]] = {g: {"level": None, "state": "CONFIGURED"} for g in groups}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self._status: dict[str, dict[str, Any]] | None = None

    def status(self) -> dict[str, dict[str, Any]]:
        # the daemon asks several times a cycle; a new copy only after a change (published ones stay as they were)
        if self._status is None:
            self._status = {g: dict(s) for g, s in self.groups.items()}
        return self._status

    def levels(self) -> dict[str, Instance]:
        """Every group's level and state, as :meth:`omha_core.init.LocalInit.levels` gives the decision."""
        return {g: Instance.of(s["level"], s["state"]) for g, s in self.groups.items()}

    def reload(self, cltab: Any) -> None:
        self._status = None
        for g in cltab.groups:
            self.groups.setdefault(g, {"level": None, "state": "CONFIGURED"})

    def tell(self, group: str, level: str, cleanup: bool = True) -> None:
        self._status = None
        st = self.groups.setdefault(group, {"level": None, "state": "CONFIGURED"})
        was = Instance(st["level"], st["state"]).active
        if (timer := self.timers.pop(group, None)) is not None:
            timer.cancel()
        w = self.world
        if level == STOP_LEVEL:
            if not was:
                st.update(level=level, state=DONE)
                return
            st.update(level=level, state=STOPPING)
            self._after(group, w.rng.uniform(0.1, 3.0), DONE)
            return
        if not was:
            w.starting(self.node, group)
        st.update(level=level, state=STARTING)
        roll = w.rng.random() if w.faulty else 1.0
        if roll < 0.002:  # hangs until the init's own timeout fails it
            self._after(group, w.rng.uniform(30.0, 60.0), FAILED)
            return
        end = FAILED if roll < 0.02 else (PASSED if level == TEST else DONE)
        self._after(group, w.rng.uniform(0.05, 2.0), end)

    def _after(self, group: str, delay: float, state: str) -> None:
        def done() -> None:
            self.timers.pop(group, None)
            self._status = None
            st = self.groups[group]
            st["state"] = state
            if st["level"] == STOP_LEVEL and state == DONE:
                self.world.stopped(self.node, group)
            self.on_change()

        self.timers[group] = self.world.loop.call_later(delay, done)

    def kill_all(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    async def shutdown(self) -> None:
        """Stop every group and wait until none is stopping any more, as :meth:`LocalInit.shutdown` does."""
        for g in self.groups:
            self.tell(g, STOP_LEVEL)
        while any(s["state"] == STOPPING for s in self.groups.values()):
            await asyncio.sleep(0.05)


# -- fence devices -----------------------------------------------------------------------------------------


class SimFence(FenceDevice):
    """Switches a simulated node off; the world decides whether the call succeeds, fails or hangs."""

    world: World | None = None

    def off(self, targets: list[str]) -> FenceResult:
        assert self.world is not None
        return self.world.fence_call(self.current_node or targets[0])

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, message="on")

    def max_duration(self, action: str, targets: list[str]) -> float:
        return 20.0


class _Plugin:
    """Registers the simulated store, membership and fence device kinds."""

    def __init__(self, world: World) -> None:
        self.world = world

    @hookimpl
    def omha_store_backends(self) -> Mapping[str, Any]:
        return {"sim": lambda config: NodeStore(config, self.world, config.data["node"])}

    @hookimpl
    def omha_membership_backends(self) -> Mapping[str, Any]:
        return {"sim": lambda config, store: SimMembership(config, store, self.world, config.data["node"])}

    @hookimpl
    def omha_fence_devices(self) -> Mapping[str, Any]:
        return {"sim": SimFence}


# -- the world ---------------------------------------------------------------------------------------------


@dataclass
class SimNode:
    """One simulated machine: powered or not, its daemon and init while powered."""

    name: str
    daemon: Daemon | None = None
    init: SimInit | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    boots: int = 0
    frozen: asyncio.Event | None = None  # set while running; cleared while frozen
    skew: float = 1.0
    #: store calls in flight in a "worker thread": they land even when their caller is cancelled
    threads: set[asyncio.Task[Any]] = field(default_factory=set)
    #: seconds until the daemon starts again once its graceful stop (a ``restart`` fault) is over
    restart_after: float = 0.0


class World:
    """One simulated cluster run from a seed."""

    def __init__(self, seed: int, params: Params | None = None) -> None:
        self.seed = seed
        self.params = params or Params()
        self.rng = random.Random(seed)
        self.loop = asyncio.get_event_loop()
        self.store = MemStore()
        self.lines: list[str] = []
        self.names = [f"n{i + 1}" for i in range(self.params.nodes)]
        self.groups = [f"g{i:02d}" for i in range(self.params.groups)]
        self.nodes = {n: SimNode(n) for n in self.names}
        self.cut: set[str] = set()
        self.split: list[set[str]] | None = None
        self.fence_mode = "ok"
        self.healed_at = 0.0
        #: group -> nodes where it holds resources (ground truth, whatever anyone published)
        self.active: dict[str, set[str]] = {g: set() for g in self.groups}
        #: group -> node that lost it without stopping it (crash, freeze, fence), until that node is fenced
        self.unclean: dict[str, str] = {}
        self.state_dir = tempfile.mkdtemp(prefix="omha-sim-")
        self.pm = get_plugin_manager(extra=[_Plugin(self)])
        SimFence.world = self
        self.violation: str | None = None
        self.fencer = ""
        self.errors: list[str] = []
        #: random failures (store calls, starts) happen until every fault heals
        self.faulty = True
        #: this run's store: the share of its calls that are slow, and how slow at most (drawn per run, as
        #: FoundationDB's simulation draws its knobs: a store that is often and very slow in some runs makes the
        #: races that need a call in flight at the wrong moment common there, not one in hundreds of runs)
        self.slow_share = self.rng.choice([0.25, 0.5])
        self.slow_max = self.params.store_delay * self.rng.choice([1, 1, 5])
        self.calm = (0.25, self.params.store_delay)  # from the heal on: one call in four slow, and only a little
        #: a test's scripted slowness: (node, function, args) -> seconds the call takes, 0 for the usual draw
        self.delay_of: Callable[[str, Callable[..., Any], tuple[Any, ...]], float] = lambda *_: 0.0
        #: node -> its incarnation that stopped cleanly (a ``restart``), until a later incarnation publishes:
        #: such a node holds nothing and runs nothing, and fencing it is fencing a healthy node
        self.clean: dict[str, str] = {}

    # -- trace and invariants ---------------------------------------------------------------------------
    def trace(self, line: str) -> None:
        self.lines.append(f"{self.loop.time():9.3f} {line}")

    def fail(self, what: str) -> None:
        if self.violation is None:
            self.violation = what
            self.trace(f"VIOLATION: {what}")

    def starting(self, node: str, group: str) -> None:
        """``node`` starts taking ``group``'s resources: nobody else may hold them, and a node that lost them
        uncleanly must have been fenced first."""
        others = self.active[group] - {node}
        if others:
            self.fail(f"{group} started on {node} while held on {', '.join(sorted(others))}")
        prev = self.unclean.get(group)
        if prev is not None and prev != node:
            self.fail(f"{group} taken over by {node} from {prev}, which was never fenced")
        self.unclean.pop(group, None)
        self.active[group].add(node)
        self.trace(f"{node} starts {group}")

    def stopped(self, node: str, group: str) -> None:
        self.active[group].discard(node)

    def side(self, node: str) -> set[str] | None:
        if self.split is None:
            return None
        return next(s for s in self.split if node in s)

    def fence_decided(self, fencer: str, target: str) -> None:
        """A node starts a fence call: it must be on the majority side now. The call itself lands later (the
        device's latency), maybe after a split began: a fence that a quorate partition decided goes on, as in
        Pacemaker, and its target was lost to that quorum. Checked at the call's start, not its landing."""
        side = self.side(fencer)
        if side is not None and 2 * len(side) <= len(self.names):
            self.fail(f"{fencer} fenced {target} from a minority side {sorted(side)}")
        if target in self.clean:
            self.fail(f"{fencer} fenced {target}, which had stopped cleanly ({self.clean[target]}) and not run since")

    def fence_call(self, target: str) -> FenceResult:
        fencer = self.fencer
        if self.fence_mode != "ok":
            self.trace(f"{fencer} fences {target}: {self.fence_mode}")
            return FenceResult(ok=False, message=f"simulated {self.fence_mode}")
        self.trace(f"{fencer} fences {target}: off")
        self.power_off(target)
        for g, n in list(self.unclean.items()):
            if n == target:
                del self.unclean[g]
        self.loop.call_later(self.rng.uniform(5, 20), self.boot, target)
        return FenceResult(ok=True, message="off")

    # -- nodes ------------------------------------------------------------------------------------------
    def config(self, node: str) -> Config:
        raw = {
            "node": node,
            "cluster": {"name": "sim", "store": "sim", "membership": "sim"},
            "timing": {"heartbeat": HEARTBEAT, "dead_after": DEAD_AFTER, "failed_retry": 30.0},
            "daemon": {"state_dir": os.path.join(self.state_dir, node)},
            "fencing": {
                "action": "off",
                "devices": [{"name": "pdu", "kind": "sim", "nodes": {n: [n] for n in self.names}}],
            },
        }
        return validate_config(raw, pm=self.pm)

    def boot(self, name: str) -> None:
        sn = self.nodes[name]
        if sn.daemon is not None:
            return
        sn.boots += 1
        ctx = contextvars.copy_context()
        ctx.run(CURRENT.set, name)
        skew = sn.skew
        d = ctx.run(Daemon, self.config(name), self.pm, lambda: self.loop.time() * skew, f"{name}.{sn.boots}")
        d.memory.started = d.clock()
        d.contact.last_ok = d.clock()
        sn.init = SimInit(self, name, list(d.cltab.groups), d.wake.set)
        d.init = sn.init
        sn.daemon = d
        sn.frozen = asyncio.Event()
        sn.frozen.set()
        sn.tasks = [self.loop.create_task(self._run(sn, d), context=ctx)]
        self.trace(f"{name} boots ({d.incarnation})")

    async def _run(self, sn: SimNode, d: Daemon) -> None:
        """The body of :meth:`Daemon.run` that matters here: wait out the previous incarnation, then cycle and
        sleep, with the watchdog beside them."""
        while True:  # lifecycle.wait_out_previous_incarnation, its wait of dead_after done on simulated time
            await asyncio.sleep(d.timing.dead_after)
            try:
                previous = wait_out_previous(d.store, d.node, 0.0, 0.0)
                break
            except StoreError:
                continue
        if previous is not None:
            d.own_incarnations.add(previous.incarnation)
        d.memory.started = d.contact.last_ok = d.clock()
        await d.documents.adopt()
        watchdog = asyncio.ensure_future(d.contact.watch(d.init))
        sn.tasks.append(watchdog)
        while not d.stopping.is_set():
            assert sn.frozen is not None
            await sn.frozen.wait()
            begun = d.clock()
            try:
                await d.cycle()
            except StoreError as exc:
                d.contact.store_failed(str(exc))
            except Exception as exc:  # the real loop logs and carries on; here it is worth a look
                self.trace(f"{sn.name} cycle failed: {type(exc).__name__}: {exc}")
                self.errors.append(traceback.format_exc())
            await d.sleep(begun)
        watchdog.cancel()
        await d._shut_down()  # the real graceful stop: stop the groups, release the claims, say so
        self.stopped_daemon(sn.name, d)

    def stopped_daemon(self, name: str, d: Daemon) -> None:
        """``d`` ended its graceful stop (a ``restart``): the machine stays up, the daemon starts again later."""
        sn = self.nodes[name]
        if sn.daemon is not d:
            return
        if d.shutdown.stopped_cleanly:
            self.clean[name] = d.incarnation
        how = "cleanly" if d.shutdown.stopped_cleanly else "holding groups"
        self.trace(f"{name} stopped {how} ({d.incarnation})")
        for g, holders in self.active.items():  # a group whose stop failed is held still, and lost uncleanly
            if name in holders:
                holders.discard(name)
                self.unclean[g] = name
        with contextlib.suppress(OSError):
            os.close(d._lock_fd)
        sn.daemon = sn.init = None
        self.loop.call_later(sn.restart_after, self.boot, name)

    def power_off(self, name: str) -> None:
        """The machine stops: daemon and groups with it (a group it held is now lost uncleanly)."""
        sn = self.nodes[name]
        if sn.daemon is None:
            return
        for t in [*sn.tasks, *sn.threads]:
            t.cancel()
        for p in [*sn.daemon.fencer.pending.values(), *sn.daemon.fencer.finishing.values()]:
            if p.task is not None:
                p.task.cancel()
        assert sn.init is not None
        sn.init.kill_all()
        for g, holders in self.active.items():
            if name in holders:
                holders.discard(name)
                self.unclean[g] = name
        with contextlib.suppress(OSError):
            os.close(sn.daemon._lock_fd)
        sn.daemon = sn.init = None
        self.trace(f"{name} powered off")

    # -- faults -----------------------------------------------------------------------------------------
    def schedule_faults(self) -> None:
        """Draw the faults of this run; each heals after a while; all heal ``BOUND`` before the end."""
        p = self.params
        last = p.duration - BOUND - 30.0
        kinds = ["crash", "freeze", "cut", "split", "skew", "hactl", "cltab", "fence-fail", "restart"]
        for _ in range(p.faults):
            at = self.rng.uniform(10.0, last - 30.0)
            length = self.rng.uniform(1.0, 25.0)
            kind = self.rng.choice(kinds)
            node = self.rng.choice(self.names)
            self.loop.call_later(at, self.fault, kind, node, length)
            self.healed_at = max(self.healed_at, at + length + 20.0)
        self.loop.call_later(last, self.heal)

    def fault(self, kind: str, node: str, length: float) -> None:
        sn = self.nodes[node]
        self.trace(f"fault {kind} {node} for {length:.1f}s")
        if kind == "crash":
            self.power_off(node)
            self.loop.call_later(length, self.boot, node)
        elif kind == "freeze" and sn.daemon is not None and sn.frozen is not None:
            sn.frozen.clear()
            d = sn.daemon
            for t in sn.tasks[1:]:
                t.cancel()  # the watchdog is frozen too; a fresh one runs after the thaw
            sn.tasks = sn.tasks[:1]
            self.loop.call_later(length, self.thaw, node, d)
        elif kind == "cut":
            self.cut.add(node)
            self.loop.call_later(length, self.cut.discard, node)
        elif kind == "split":
            minority = set(self.rng.sample(self.names, self.rng.randint(1, (len(self.names) - 1) // 2)))
            self.split = [minority, set(self.names) - minority]
            self.trace(f"split {sorted(minority)} | {sorted(set(self.names) - minority)}")
            self.loop.call_later(length, self.unsplit)
        elif kind == "skew":
            sn.skew = self.rng.choice([0.9, 1.1])  # from its next boot
        elif kind == "hactl":
            self.write_hactl(drop=self.rng.choice(self.groups))
            self.loop.call_later(length, self.write_hactl)
        elif kind == "cltab":
            self.write_cltab(extra=True)
        elif kind == "fence-fail":
            self.fence_mode = "failure"
            self.loop.call_later(length, setattr, self, "fence_mode", "ok")
        elif kind == "restart" and sn.daemon is not None and sn.frozen is not None and sn.frozen.is_set():
            sn.restart_after = length  # the daemon stops gracefully (SIGTERM), then starts again
            sn.daemon.stopping.set()

    def thaw(self, node: str, d: Daemon) -> None:
        sn = self.nodes[node]
        if sn.daemon is not d or sn.frozen is None:
            return
        self.trace(f"{node} thaws")
        sn.frozen.set()
        ctx = contextvars.copy_context()
        ctx.run(CURRENT.set, node)
        sn.tasks.append(self.loop.create_task(d.contact.watch(d.init), context=ctx))

    async def thawed(self) -> None:
        """Until the node whose code runs now is not frozen: a frozen node's store and device calls wait, as its
        threads would."""
        node = self.nodes.get(CURRENT.get())
        if node is not None and node.frozen is not None and not node.frozen.is_set():
            await node.frozen.wait()

    def unsplit(self) -> None:
        self.split = None
        self.trace("split healed")

    def heal(self) -> None:
        self.trace("all faults healed")
        self.faulty = False
        self.slow_share, self.slow_max = self.calm
        self.cut.clear()
        self.split = None
        self.fence_mode = "ok"
        for sn in self.nodes.values():
            if sn.frozen is not None and not sn.frozen.is_set() and sn.daemon is not None:
                self.thaw(sn.name, sn.daemon)
            if sn.daemon is None:
                self.boot(sn.name)
        self.write_hactl()
        self.healed_at = self.loop.time()

    # -- documents --------------------------------------------------------------------------------------
    def write_cltab(self, extra: bool = False) -> None:
        lines = ["# group:tag:runlevels:mode:command"]
        for g in self.groups:
            lines += [f"{g}:t{g}:test:test:true", f"{g}:d{g}:run:respawn:exec sleep 1000"]
        if extra:
            lines.append(f"g00:x{self.store.version}:run:once:true")
        self.store.put("cltab", "\n".join(lines) + "\n", None)

    def write_hactl(self, drop: str | None = None) -> None:
        self.store.put("hactl", "".join(f"{g} run\n" for g in self.groups if g != drop), None)

    # -- the run ----------------------------------------------------------------------------------------
    def wanted_ok(self) -> list[str]:
        """Wanted groups not at their level on exactly one powered node."""
        bad = []
        for g in self.groups:
            at = [
                n
                for n, sn in self.nodes.items()
                if sn.init is not None
                and sn.init.groups.get(g, {}).get("level") == "run"
                and sn.init.groups[g]["state"] == DONE
            ]
            if len(at) != 1:
                bad.append(f"{g}@{','.join(at) or 'nowhere'}")
        return bad

    async def main(self) -> None:
        self.write_cltab()
        self.write_hactl()
        for n in self.names:
            self.boot(n)
        self.schedule_faults()
        while self.loop.time() < self.params.duration and self.violation is None:
            await asyncio.sleep(1.0)
        if self.violation is None and (bad := self.wanted_ok()):
            self.fail(f"{BOUND:g} s after the faults healed, not running at level: {' '.join(bad)}")
            for g in [b.split("@")[0] for b in bad][:3]:
                for n, sn in self.nodes.items():
                    if sn.daemon is not None and sn.init is not None:
                        why = sn.daemon.last_view.get("why", {}).get(g)
                        self.trace(f"  {g} on {n}: {sn.init.groups.get(g)}; {why}")
                self.trace(f"  {g} claim: {self.store.claim.get(g)}")
        for n in self.names:
            self.power_off(n)

    def close(self) -> None:
        shutil.rmtree(self.state_dir, ignore_errors=True)


@contextlib.contextmanager
def _inline_threads(world: World) -> Iterator[None]:
    """Run every ``asyncio.to_thread`` call inline, after a simulated store or device delay."""
    real = asyncio.to_thread

    async def to_thread(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if func is fencing.fence_levels:
            world.fence_decided(CURRENT.get(), args[1])
            await asyncio.sleep(world.rng.uniform(0.5, 3.0))
            world.fencer = CURRENT.get()  # the device call runs in a thread of its own, outside the context
        elif (delay := world.delay_of(CURRENT.get(), func, args)) or (
            world.params.store_delay and world.rng.random() < world.slow_share
        ):  # a slow store call runs in a "worker thread": cancelling its caller does not stop it, it lands
            node = world.nodes.get(CURRENT.get())
            delay = delay or world.rng.uniform(0.0, world.slow_max)
            call = world.loop.create_task(_thread(world, delay, partial(func, *args, **kwargs)))
            call.add_done_callback(lambda t: t.cancelled() or t.exception())  # a caller gone: nobody reads it
            if node is not None:
                node.threads.add(call)
                call.add_done_callback(node.threads.discard)
            return await asyncio.shield(call)
        await world.thawed()
        return func(*args, **kwargs)

    asyncio.to_thread = to_thread
    try:
        yield
    finally:
        asyncio.to_thread = real


async def _thread(world: World, delay: float, call: Callable[[], Any]) -> Any:
    """A slow store call in its worker thread: it waits out its delay (and a freeze), then runs."""
    await asyncio.sleep(delay)
    await world.thawed()
    return call()


@dataclass
class Result:
    """How one seeded run ended."""

    seed: int
    violation: str | None
    trace: list[str]
    sim_seconds: float

    def report(self) -> str:
        return f"seed {self.seed}: {self.violation}\n" + "\n".join(self.trace[-80:])


def run(seed: int, params: Params | None = None, setup: Callable[[World], None] | None = None) -> Result:
    """One seeded run on a fresh virtual-time loop; ``setup`` may script faults of its own into the world."""
    from tests.sim.vtloop import VirtualLoop

    logging.getLogger("omha").setLevel(logging.CRITICAL)
    loop = VirtualLoop()
    asyncio.set_event_loop(loop)
    world = World(seed, params)

    def on_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # a powered-off node's waits are dropped with it, as its process would be: not worth a line
        if not str(context.get("message", "")).startswith("Task was destroyed but it is pending"):
            world.trace(f"event loop: {context.get('message')} {context.get('exception')!r}")

    loop.set_exception_handler(on_error)
    if setup is not None:
        setup(world)
    try:
        with _inline_threads(world):
            loop.run_until_complete(world.main())
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    finally:
        world.close()
        loop.close()
        asyncio.set_event_loop(None)
    return Result(seed, world.violation, world.lines, world.params.duration)
