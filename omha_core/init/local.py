"""The local cluster-init: every resource group of this node's cltab, driven by ``tell``.

Everything runs in the caller's asyncio event loop (the daemon's): children are started with
``posix_spawn`` and noticed through pidfds and pipes registered with the loop, so there is no thread per
process and nothing polls while all is quiet. Each child runs in a cell of its own (a cgroup v2 where the
machine allows it, see :mod:`omha_core.init.cells`) so that a stop, and the guard when the daemon dies, reach
every process it started, even one that left its process group with ``setsid()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from omha_core.cltab import LEVEL_RE, NAME_RULE, Cltab
from omha_core.group_state import GroupState
from omha_core.init.cells import Cells
from omha_core.init.choose import open_cells
from omha_core.init.group import CONFIGURED, Group
from omha_core.init.guardlink import GuardLink
from omha_core.init.host import AgentHost
from omha_core.init.options import InitOptions
from omha_core.init.process import Runtime

#: the soft open-files limit the init raises itself to (two descriptors per running entry), within the hard one
WANTED_NOFILE = 8192


class LocalInit:
    """This node's groups: ``tell(group, level)``, ``status()``, ``reload(cltab)``, ``shutdown()``.

    :param cltab: the parsed cltab.
    :param options: the ``[init]`` section of ``omha.toml`` (see :class:`~omha_core.init.options.InitOptions`).
    :param logger: where the init's messages and every child's output (``group/tag: line``) go.
    :param env: variables added to the environment of every child.
    :param config_path: passed to resource-agent children as ``OMHA_CONFIG``.
    :param on_change: called in the event loop whenever a group's or an entry's state changes.
    :param scope: this init's scope (:func:`omha_core.init.owners.scope_of` of its identity): its start-up sweep
        kills only what a dead init of the same scope left, never another node's or cluster's processes.
    """

    def __init__(
        self,
        cltab: Cltab,
        options: Mapping[str, Any] | None = None,
        logger: logging.Logger | None = None,
        env: Mapping[str, str] | None = None,
        config_path: str | None = None,
        on_change: Callable[[], None] | None = None,
        scope: str | None = None,
    ) -> None:
        self.cltab = cltab
        self.scope = scope
        self._base_options = InitOptions.from_mapping(options)
        self.options = self._effective_options(cltab)
        self.logger = logger or logging.getLogger("omha.init")
        self.on_change = on_change
        child_env = dict(os.environ)
        child_env.update(env or {})
        self._rt = Runtime(self.options, self.logger, child_env, config_path, self._notify)
        self._groups: dict[str, Group] = {}
        self._guard: GuardLink | None = None
        self._cells: Cells | None = None
        self._closed = False

    def _effective_options(self, cltab: Cltab) -> InitOptions:
        """The ``[init]`` options with the cltab's own ``:::wait_failure:`` setting line, if any, applied."""
        setting = cltab.settings.get("wait_failure")
        return replace(self._base_options, wait_failure=setting) if setting else self._base_options

    def _notify(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change()
        except Exception:
            self.logger.exception("on_change callback failed")

    async def start(self) -> None:
        """Make the init's cgroup (or fall back to markers) and start the guard that kills every child if the
        daemon dies. Call once, inside the running loop."""
        if self._guard is not None:
            raise RuntimeError("LocalInit.start() was already called")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < WANTED_NOFILE:
            new = WANTED_NOFILE if hard == resource.RLIM_INFINITY else min(WANTED_NOFILE, hard)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        self._cells = open_cells(self.options.cgroup, self.logger, self.scope)
        self._guard = GuardLink(self.logger, where=self._cells.guard_args())
        try:
            self._guard.start()
        except BaseException:
            self._cells.close()
            raise
        self._rt.guard = self._guard
        self._rt.cells = self._cells
        if self._cells.kind == "cgroup" and self.options.agent_host == "auto":
            self._rt.host = AgentHost(self.logger, self._cells, self._rt.env)
            if any(e.agent is not None for e in self.cltab.entries):
                self._rt.host.usable()  # start it now: the first failover should not wait for its imports

    def _group(self, name: str) -> Group:
        group = self._groups.get(name)
        if group is None:
            entries = self.cltab.group_entries(name)
            if not entries:
                self.logger.warning("group %s has no entries in %s", name, self.cltab.filename)
            group = self._groups[name] = Group(name, entries, self._rt)
        return group

    def tell(self, group: str, level: str, cleanup: bool = True) -> None:
        """Move ``group`` to ``level``; returns at once (the group is STARTING or STOPPING until it settles).

        A tell while a transition runs supersedes it: the new level wins. ``cleanup=False`` with level ``stop``:
        do not run the group's ``stop`` entries (the daemon passes it when another node may hold the group).

        :raises ValueError: ``level`` is not a word (letters, digits, ``_``).
        :raises RuntimeError: :meth:`start` was not called, or :meth:`shutdown` was.
        """
        if self._guard is None:
            raise RuntimeError("LocalInit.start() must be called (in the event loop) before tell()")
        if self._closed:
            raise RuntimeError("the init is shut down")
        if not isinstance(level, str) or not LEVEL_RE.match(level):
            raise ValueError(f"level {level!r} must be {NAME_RULE} and ',' (like 'run', '3', 'stop')")
        g = self._group(group)
        self.logger.info("group %s: level %s -> %s", group, g.level, level)
        g.level = level
        g.tell(level, cleanup)

    async def wait_settled(self, group: str, timeout: float | None = None) -> str:
        """Wait until ``group``'s transition is finished; return its state (CONFIGURED if never told).

        :raises TimeoutError: still in transition after ``timeout`` seconds.
        """
        g = self._groups.get(group)
        if g is None:
            return CONFIGURED

        async def settle() -> None:
            while not g.settled.is_set():
                await g.settled.wait()

        await asyncio.wait_for(settle(), timeout)
        return g.state

    def reload(self, cltab: Cltab) -> None:
        """Adopt a re-read (already validated) cltab: entries that changed are restarted, removed ones are
        stopped, entries whose mode became ``off`` are stopped, new ones matching their group's level start,
        unchanged running ones are left alone. Returns at once, like :meth:`tell`."""
        self.cltab = cltab
        self.options = self._rt.options = self._effective_options(cltab)
        for name, g in self._groups.items():
            if g.reconfigure(cltab.group_entries(name)) and g.level is not None and not self._closed:
                self.logger.info("group %s: cltab changed; applying it at level %s", name, g.level)
                g.tell(g.level)

    def status(self) -> dict[str, Any]:
        """Every group told so far: level, state, since (time.time()) and entries (see :mod:`.process`)."""
        return {name: g.status() for name, g in self._groups.items()}

    def levels(self) -> dict[str, GroupState]:
        """Every group told so far: its level and state, without building each entry's status as :meth:`status`
        does (the daemon's decision reads this every cycle)."""
        return {name: GroupState.of(g.level, g.state) for name, g in self._groups.items()}

    def level(self, group: str) -> str | None:
        """The level last told to ``group`` (None if never told)."""
        g = self._groups.get(group)
        return g.level if g is not None else None

    def state(self, group: str) -> str:
        """``group``'s state: CONFIGURED, STARTING, STOPPING, DONE, PASSED or FAILED."""
        g = self._groups.get(group)
        return g.state if g is not None else CONFIGURED

    @property
    def containment(self) -> str | None:
        """How children are held: ``cgroup`` or ``environment marker`` (None before :meth:`start`)."""
        return self._cells.kind if self._cells is not None else None

    @property
    def agent_host_pid(self) -> int | None:
        """The agent host's pid while it runs (None: none, or agent actions start a process each)."""
        return self._rt.host.pid if self._rt.host is not None else None

    @property
    def guard_pid(self) -> int | None:
        """The guard process's pid (for tests and ``omha status``)."""
        return self._guard.pid if self._guard is not None else None

    async def shutdown(self) -> None:
        """Stop every group, in reverse cltab order and one after the other, then stop the guard, kill whatever
        could not be stopped (nothing may outlive the daemon) and remove the init's cgroup.

        What the daemon does on SIGTERM/SIGINT (the original's haltwait); the init accepts no tell after it.
        """
        self._closed = True
        order = [n for n in self.cltab.groups if n in self._groups]
        order += [n for n in self._groups if n not in order]
        for name in reversed(order):
            g = self._groups[name]
            if g.procs or g.retired or g.pending():
                g.tell(None)
                await self.wait_settled(name)
        if self._rt.host is not None:
            await self._rt.host.close()
        if self._guard is not None:
            await self._guard.close()
        if self._cells is not None:
            left = self._cells.leftovers()
            if left:
                self.logger.error("killing processes left after every group was stopped: %s", sorted(left))
            self._cells.close()
