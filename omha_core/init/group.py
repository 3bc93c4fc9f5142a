"""One resource group: its entries and the runlevel transition that a ``tell`` starts.

A transition to level L (after Cluster::Init, with the differences the README lists):

1. entries that do not match L (and entries removed or changed by a cltab re-read) are stopped: every shell
   command at once (SIGINT to all, then SIGTERM to all still running after ``stop_grace``, then SIGKILL, so N
   entries take as long as one), then the resource-agent entries one after another in reverse file order
   (their processes are gone by then, so a mount is not released under a running program);
2. the entries that match L start in file order: one that already runs (or has finished) at the previous
   level is kept as it is (``12`` is not restarted moving from 1 to 2); a ``wait`` entry must exit before the
   next one starts; a ``test`` entry too, each within ``test_timeout``, so a test may rely on the ones before
   it; ``once`` and ``respawn`` entries start in the background;
3. the group ends DONE, or PASSED when L has ``test`` entries and all of them exited 0, or FAILED when a test
   failed, a ``wait`` entry exited non-zero (with ``wait_failure = "fail"``, the default, the entries after it
   are not started; with ``"continue"`` the next one starts and the failure only shows in the entry's
   state), or something could not be stopped or released.

Level ``stop`` (and the halt at shutdown) stops every entry, then runs the entries whose runlevels include
``stop``, the site's cleanup commands, one after another in file order, each to completion within
``stop_timeout``, while the group is still STOPPING (so its claim is kept until they are done). They run only
when the group ran at another level on this node since its last stop, and not when the daemon stops a group
that another node may hold (``cleanup=False``). A cleanup that fails (or times out) leaves the group FAILED
under ``wait_failure = "fail"``, so the others fence this node before taking the group over; the later
cleanup entries still run.

A new ``tell`` while a transition runs supersedes it: the old one is cancelled between two steps (a stop
or a ``wait`` in progress goes on, and the new transition waits for it or keeps it), and the new one starts
from the entries as they are.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from omha_core.cltab import STOP, Entry
from omha_core.group_state import (  # noqa: F401 - the states, re-exported by omha_core.init
    CONFIGURED,
    DONE,
    FAILED,
    GROUP_STATES,
    PASSED,
    STARTING,
    STOPPING,
)
from omha_core.init.process import RUNNING, Runtime, Supervised, describe_exit


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
        #: the group ran at a level other than ``stop`` here since its cleanup entries last ran
        self._cleanup_due = False

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()
            self.rt.notify()

    def _to_stop(self, level: str | None) -> list[Supervised]:
        current = [p for p in reversed(self.procs.values()) if p.needs_stop() and not p.wanted_at(level)]
        return list(reversed(self.retired)) + current

    def tell(self, level: str | None, cleanup: bool = True) -> None:
        """Start the transition to ``level`` (None: halt, as at shutdown) and return at once. ``cleanup=False``:
        do not run the ``stop`` entries (another node may hold the group)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        halting = level is None or level == STOP
        if not halting:
            self._cleanup_due = True
        self.settled.clear()
        self._set_state(STOPPING if halting or self._to_stop(level) else STARTING)
        self._task = asyncio.get_running_loop().create_task(self._run(level, cleanup))

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

    async def _run(self, level: str | None, cleanup: bool) -> None:
        async with self._lock:  # a superseded transition unwinds first
            try:
                state = await self._transition(level, cleanup)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.rt.logger.exception("group %s: internal error in the transition to %s", self.name, level)
                state = FAILED
            self._set_state(state)
            self.settled.set()

    async def _stop_all(self, stops: list[Supervised]) -> bool:
        """Stop ``stops``: shell commands together, then agent entries one by one (see the module docstring)."""
        shell = [p for p in stops if p.entry.agent is None]
        agents = [p for p in stops if p.entry.agent is not None]
        results = list(await asyncio.gather(*(asyncio.shield(p.stop()) for p in shell)))
        for proc in agents:
            results.append(await asyncio.shield(proc.stop()))
        for proc in stops:
            if proc in self.retired:
                self.retired.remove(proc)
        return all(results)

    async def _complete(self, proc: Supervised, timeout: float, setting: str) -> int:
        """Wait for ``proc``'s run to end; past ``timeout`` seconds stop it and count it as failed."""
        try:
            return await asyncio.wait_for(proc.finished(), timeout)
        except TimeoutError:
            self.rt.logger.error(
                "%s: %s entry still running after %s (%gs); stopping it", proc.label, proc.mode, setting, timeout
            )
            await asyncio.shield(proc.stop())
            proc.mark_failed()
            return proc.exit or 1

    def _failed_wait(self, proc: Supervised, rc: int) -> bool:
        """Log a failed ``wait`` entry; True when the group fails for it (``wait_failure = "fail"``)."""
        if self.rt.options.wait_failure == "continue":
            self.rt.logger.warning(
                "group %s: wait entry %s failed (%s); going on with the next entry (wait_failure = continue)",
                self.name,
                proc.label,
                describe_exit(rc),
            )
            return False
        self.rt.logger.warning(
            "group %s: wait entry %s failed; the entries after it are not started", self.name, proc.label
        )
        return True

    async def _cleanup(self) -> bool:
        """Run the entries at level ``stop`` in file order, each to completion; False when one failed and
        ``wait_failure`` is ``fail``."""
        ok = True
        for proc in [p for p in self.procs.values() if p.wanted_at(STOP)]:
            if proc.needs_stop():
                await asyncio.shield(proc.stop())
            proc.start(STOP)
            rc = await self._complete(proc, self.rt.options.stop_timeout, "stop_timeout")
            if rc != 0:
                self.rt.logger.warning(
                    "group %s: cleanup entry %s at level stop failed (%s)", self.name, proc.label, describe_exit(rc)
                )
                ok = ok and self.rt.options.wait_failure == "continue"
        return ok

    async def _transition(self, level: str | None, cleanup: bool) -> str:
        halting = level is None or level == STOP
        stops = self._to_stop(None if halting else level)
        if stops:
            self._set_state(STOPPING)
        failed = not await self._stop_all(stops)
        if level is None or halting:
            if cleanup and self._cleanup_due:
                failed = not await self._cleanup() or failed
            self._cleanup_due = False
            return FAILED if failed else DONE
        wanted = [p for p in self.procs.values() if p.wanted_at(level)]
        if not wanted:
            return FAILED if failed else DONE
        self._set_state(STARTING)
        tests = False
        for proc in wanted:
            if proc.stopping:  # a superseded transition was stopping it
                await asyncio.shield(proc.stop())
            if not proc.keeps():
                proc.start(level)
            if proc.mode == "test":
                tests = True
                if await self._complete(proc, self.rt.options.test_timeout, "test_timeout") != 0:
                    failed = True
            elif proc.mode == "wait":
                rc = await proc.finished()
                if rc != 0 and self._failed_wait(proc, rc):
                    failed = True
                    break
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
