"""One resource group: its entries and the runlevel transition that a ``tell`` starts.

A transition to level L (Cluster::Init semantics):

1. entries that do not match L (and entries removed or changed by a cltab re-read) are stopped, one after
   the other, in reverse file order;
2. the entries that match L start in file order: one that already runs (or has finished) at the previous
   level is kept as it is (``12`` is not restarted moving from 1 to 2), a ``wait`` entry must exit before
   the next one starts, ``once``/``respawn``/``test`` entries start in the background;
3. the group ends DONE, or PASSED when L has ``test`` entries and all of them exited 0, or FAILED when a test
   or a ``wait`` entry exited non-zero (the entries after a failed ``wait`` are not started) or something
   could not be stopped or released.

A new ``tell`` while a transition runs supersedes it: the old one is cancelled between two steps (a stop
or a ``wait`` in progress goes on, and the new transition waits for it or keeps it), and the new one starts
from the entries as they are.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from omha_core.cltab import Entry
from omha_core.init.process import RUNNING, Runtime, Supervised

CONFIGURED, STARTING, STOPPING = "CONFIGURED", "STARTING", "STOPPING"
DONE, PASSED, FAILED = "DONE", "PASSED", "FAILED"
GROUP_STATES = (CONFIGURED, STARTING, STOPPING, DONE, PASSED, FAILED)


class Group:
    """A resource group's entries, level, state and transition."""

    def __init__(self, name: str, entries: list[Entry], rt: Runtime) -> None:
        self.name = name
        self.rt = rt
        #: the level last told; None until told
        self.level: str | None = None
        self.state = CONFIGURED
        self.since = time.time()
        self.procs: dict[str, Supervised] = {e.tag: Supervised(e, rt) for e in entries}
        #: entries removed or changed by a cltab re-read that still have something to stop
        self.retired: list[Supervised] = []
        self.settled = asyncio.Event()
        self.settled.set()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()
            self.rt.notify()

    def _to_stop(self, level: str | None) -> list[Supervised]:
        current = [p for p in reversed(self.procs.values()) if p.needs_stop() and not p.wanted_at(level)]
        return list(reversed(self.retired)) + current

    def tell(self, level: str | None) -> None:
        """Start the transition to ``level`` (None: stop everything) and return at once."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self.settled.clear()
        self._set_state(STOPPING if self._to_stop(level) else STARTING)
        self._task = asyncio.get_running_loop().create_task(self._run(level))

    def reconfigure(self, entries: list[Entry]) -> bool:
        """Adopt a re-read cltab's entries for this group; return True when any entry was added, changed or
        removed. Unchanged entries keep their processes; changed and removed ones are retired (stopped by the
        next transition)."""
        changed = False
        procs: dict[str, Supervised] = {}
        for entry in entries:
            old = self.procs.get(entry.tag)
            if old is not None and old.entry.same_definition(entry):
                old.entry = entry  # the line number may have moved
                procs[entry.tag] = old
                continue
            changed = True
            procs[entry.tag] = Supervised(entry, self.rt)
            if old is not None:
                self._retire(old)
        for tag, old in self.procs.items():
            if tag not in procs:
                changed = True
                self._retire(old)
        self.procs = procs
        return changed

    def _retire(self, proc: Supervised) -> None:
        if proc.needs_stop() or proc.stopping:
            self.retired.append(proc)

    async def _run(self, level: str | None) -> None:
        async with self._lock:  # a superseded transition unwinds first
            try:
                state = await self._transition(level)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.rt.logger.exception("group %s: internal error in the transition to %s", self.name, level)
                state = FAILED
            self._set_state(state)
            self.settled.set()

    async def _transition(self, level: str | None) -> str:
        failed = False
        stops = self._to_stop(level)
        if stops:
            self._set_state(STOPPING)
        for proc in stops:
            if not await asyncio.shield(proc.stop()):
                failed = True
            if proc in self.retired:
                self.retired.remove(proc)
        wanted = [p for p in self.procs.values() if p.wanted_at(level)]
        if level is None or not wanted:
            return FAILED if failed else DONE
        self._set_state(STARTING)
        tests: list[Supervised] = []
        for proc in wanted:
            if proc.stopping:  # a superseded transition was stopping it
                await asyncio.shield(proc.stop())
            if not proc.keeps():
                proc.start(level)
            if proc.mode == "test":
                tests.append(proc)
            elif proc.mode == "wait":
                rc = await proc.finished()
                if rc != 0:
                    self.rt.logger.warning(
                        "group %s: wait entry %s failed; the entries after it are not started", self.name, proc.label
                    )
                    failed = True
                    break
        for proc in tests:
            if await proc.finished() != 0:
                failed = True
        if failed:
            return FAILED
        return PASSED if tests else DONE

    def pending(self) -> bool:
        """True while a transition runs."""
        return not self.settled.is_set()

    def running(self) -> list[Supervised]:
        """Entries whose process runs."""
        return [p for p in self.procs.values() if p.state == RUNNING]

    def status(self) -> dict[str, Any]:
        """This group's part of ``LocalInit.status()``."""
        return {
            "level": self.level,
            "state": self.state,
            "since": self.since,
            "entries": {tag: p.status() for tag, p in self.procs.items()},
        }
