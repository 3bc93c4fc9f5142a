"""One supervised cltab entry: what its mode means when it is started, when it exits and when it is stopped.

Entry states (``status()["…"]["entries"][tag]["state"]``):

- ``stopped``: not running (never started at this level, or stopped when the group left it).
- ``off``: the entry's mode is ``off``; it never runs.
- ``running``: its process runs (a ``wait`` or ``test`` entry still running holds its group in STARTING).
- ``stopping``: being stopped (signals sent, or a resource agent's ``release`` running).
- ``throttled``: a ``respawn`` entry that was "respawning too rapidly", paused for ``respawn_pause``.
- ``done``: a ``wait`` entry that exited 0.
- ``exited``: a ``once`` entry that exited (the ``exit`` field says how).
- ``passed``: a ``test`` entry that exited 0.
- ``failed``: a ``wait`` or ``test`` entry that exited non-zero (or could not be started).

``exit`` is the last exit status: a number, negative ``-N`` when killed by signal ``N``, None before any exit.

Resource-agent entries (``@name args``) run ``python -m omha_core.agent NAME ACTION ARGS`` (forked by the agent
host instead of started, where the init has one: :mod:`omha_core.init.host`): ``wait``/``once``
run ``acquire`` and, when stopped, ``release``; ``respawn`` runs ``respawn`` (acquire, then monitor; exit 3
when the resource is lost, so it is restarted under the same throttle; SIGTERM makes it release and exit);
``test`` runs ``check``. ``acquire``, ``check`` and ``release`` are killed after ``agent_timeout`` seconds.

An agent entry that may hold its resource is *held* from its start until its stop released it: a ``wait`` or
``once`` entry has no process left while it holds, and a ``respawn`` entry may hold it with no monitor running
(paused as "respawning too rapidly", or between two runs: an acquire may fail half-way, or a monitor may die
without releasing). Stopping a held entry whose monitor is not running (or did not exit 0 after releasing)
runs ``release`` itself; a release that fails fails the group. Held entries are also told to the guard, which
runs their ``release`` if the daemon dies (:mod:`omha_core.init.guard`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any, Protocol

from omha_core.cltab import Entry
from omha_core.init.cells import Cells
from omha_core.init.child import Child, Registry
from omha_core.init.host import AgentHost
from omha_core.init.options import InitOptions
from omha_core.secrets import redact_command

STOPPED, OFF, RUNNING, STOPPING, THROTTLED = "stopped", "off", "running", "stopping", "throttled"
DONE, EXITED, PASSED, FAILED = "done", "exited", "passed", "failed"
#: states an entry keeps when its group moves to another level that the entry also matches
KEPT_STATES = frozenset({RUNNING, THROTTLED, DONE, EXITED, PASSED})
#: the agent action each mode runs
AGENT_ACTIONS = {"wait": "acquire", "once": "acquire", "respawn": "respawn", "test": "check"}
#: exit status recorded when the command could not be started at all (as a shell reports it)
EXIT_NOT_STARTED = 127
#: an agent child's exit status when the agent is unknown or its arguments invalid: it acquired nothing
EXIT_AGENT_USAGE = 2

_hold_keys = count(1)


class Guard(Registry, Protocol):
    """The guard as the entries see it: process groups to kill, and agent resources to release, if the daemon dies."""

    def hold(self, key: str, label: str, argv: Sequence[str], env: Mapping[str, str], timeout: float) -> None: ...

    def drop(self, key: str) -> None: ...


@dataclass
class Runtime:
    """What every supervised entry of one init shares."""

    options: InitOptions
    logger: logging.Logger
    env: Mapping[str, str]
    config_path: str | None
    notify: Callable[[], None]
    guard: Guard | None = None
    #: where every child's processes are held (a cgroup each, or an environment marker)
    cells: Cells | None = None
    #: forks agent actions instead of starting Python for each (None: every action is a process of its own)
    host: AgentHost | None = None


class Supervised:
    """A cltab entry and the process(es) it runs."""

    def __init__(self, entry: Entry, rt: Runtime) -> None:
        self.entry = entry
        self.rt = rt
        #: the command as status and log messages show it (secrets replaced); the command never changes
        self.shown = redact_command(entry.command)
        self.label = f"{entry.group}/{entry.tag}"
        self.state = OFF if entry.mode == "off" else STOPPED
        self.child: Child | None = None
        #: earlier process groups of this entry whose leader exited but that still hold live processes
        self.lingering: list[Child] = []
        self.restarts = 0
        self.exit: int | None = None
        #: an agent's acquire was started (its resource may be held): release it when the entry stops
        self.held = False
        #: every run of this respawn agent so far ended before acquiring (unknown agent, invalid arguments)
        self._usage_only = True
        #: this entry's name for the guard while it is held
        self._hold_key = f"{next(_hold_keys)}"
        self._supervise = False
        self._quick = 0
        self._level: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._run: asyncio.Future[int] | None = None
        self._stop_task: asyncio.Task[bool] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ----------------------------------------------------------------------------------------------- queries

    @property
    def mode(self) -> str:
        return self.entry.mode

    @property
    def stopping(self) -> bool:
        """True while a stop is in progress."""
        return self._stop_task is not None

    def wanted_at(self, level: str | None) -> bool:
        """True when the entry should run at ``level`` (None: the group is being halted)."""
        return level is not None and self.mode != "off" and self.entry.matches(level)

    def needs_stop(self) -> bool:
        """True when stopping would do something: a process, a held resource, a result to forget."""
        return self.state not in (STOPPED, OFF) or self.child is not None or bool(self.lingering) or self.held

    def keeps(self) -> bool:
        """True when a transition to another matching level leaves the entry as it is."""
        return self.state in KEPT_STATES

    def status(self) -> dict[str, Any]:
        """This entry's part of ``LocalInit.status()``."""
        return {
            "mode": self.mode,
            "pid": self.child.pid if self.child is not None else None,
            "state": self.state,
            "restarts": self.restarts,
            "exit": self.exit,
            "command": self.shown,
        }

    # ----------------------------------------------------------------------------------------------- start

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.rt.notify()

    def _argv(self, action: str) -> list[str]:
        agent = self.entry.agent
        if agent is None:
            return ["/bin/sh", "-c", self.entry.command]
        return [sys.executable, "-m", "omha_core.agent", agent, action, self.entry.agent_args]

    def _env(self) -> dict[str, str]:
        env = dict(self.rt.env)
        env.update(OMHA_GROUP=self.entry.group, OMHA_TAG=self.entry.tag, OMHA_LEVEL=self._level or "")
        if self.entry.agent is not None and self.rt.config_path:
            env["OMHA_CONFIG"] = self.rt.config_path
        return env

    def start(self, level: str) -> None:
        """Start the entry for ``level`` (it must not be running); returns at once."""
        self._level = level
        self.restarts = 0
        self._quick = 0
        self.exit = None
        self._supervise = self.mode == "respawn"
        self._run = None if self.mode == "respawn" else asyncio.get_running_loop().create_future()
        if self.entry.agent is not None and self.mode in ("wait", "once", "respawn") and not self.held:
            self._hold()
        self._spawn()

    def _hold(self) -> None:
        """The resource may be held from now on: release it on stop, and have the guard release it if the daemon
        dies."""
        self.held = True
        self._usage_only = True
        if self.rt.guard is not None:
            self.rt.guard.hold(
                self._hold_key, self.label, self._argv("release"), self._env(), self.rt.options.agent_timeout
            )

    def _unhold(self) -> None:
        """Released (or given up on after a failed release): nothing left for the stop or the guard to release."""
        self.held = False
        if self.rt.guard is not None:
            self.rt.guard.drop(self._hold_key)

    def _spawn(self) -> None:
        action = AGENT_ACTIONS[self.mode]
        try:
            self.child = Child(
                self._argv(action),
                self.label,
                self.rt.logger,
                self._env(),
                on_exit=self._exited,
                guard=self.rt.guard,
                cells=self.rt.cells,
                host=self.rt.host,
            )
        except (OSError, ValueError) as exc:
            self.rt.logger.error("%s: cannot start %s: %s", self.label, self.shown, exc)
            self.child = None
            asyncio.get_running_loop().call_soon(self._ended, EXIT_NOT_STARTED, time.monotonic())
            return
        self.rt.logger.debug("%s: started pid %d: %s", self.label, self.child.pid, self.shown)
        if self.entry.agent is not None and self.mode != "respawn":
            self._timer = self.child.loop.call_later(self.rt.options.agent_timeout, self._timed_out, self.child)
        self._set(RUNNING)

    def _timed_out(self, child: Child) -> None:
        self._timer = None
        if not child.alive:
            return
        self.rt.logger.error(
            "%s: %s did not finish within agent_timeout (%gs); killing it",
            self.label,
            AGENT_ACTIONS[self.mode],
            self.rt.options.agent_timeout,
        )
        self._background(child.terminate([(signal.SIGTERM, 0.0), (signal.SIGKILL, 2.0)]))

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ----------------------------------------------------------------------------------------------- exit

    def _exited(self, child: Child) -> None:
        if not child.group_gone():
            self.lingering.append(child)
        self.lingering = [c for c in self.lingering if not c.group_gone()]
        if child is not self.child:
            return
        self.child = None
        self._ended(child.returncode if child.returncode is not None else EXIT_NOT_STARTED, child.started)

    def _ended(self, rc: int, started: float) -> None:
        self.exit = rc
        self._cancel_timer()
        if self.mode == "respawn":
            if rc != EXIT_AGENT_USAGE:
                self._usage_only = False
            if self._supervise:
                self.rt.logger.info("%s: respawn entry exited (%s)", self.label, describe_exit(rc))
                self._respawn_after(started)
            return
        if self._run is not None and not self._run.done():
            self._run.set_result(rc)
        if self._stop_task is not None:
            return  # being stopped: the stop sets the final state
        if self.mode == "wait":
            state = DONE if rc == 0 else FAILED
        elif self.mode == "test":
            state = PASSED if rc == 0 else FAILED
        else:
            state = EXITED
        log = self.rt.logger.warning if state == FAILED else self.rt.logger.info
        log("%s: %s entry exited (%s)", self.label, self.mode, describe_exit(rc))
        self._set(state)

    def _respawn_after(self, started: float) -> None:
        opts = self.rt.options
        self._quick = self._quick + 1 if time.monotonic() - started < opts.respawn_window else 0
        if self._quick > opts.respawn_limit:
            self._quick = 0
            self.rt.logger.warning(
                "%s: respawning too rapidly (more than %d restarts in a row, each within %gs of the previous "
                "start); pausing %gs",
                self.label,
                opts.respawn_limit,
                opts.respawn_window,
                opts.respawn_pause,
            )
            self._set(THROTTLED)
            self._timer = asyncio.get_running_loop().call_later(opts.respawn_pause, self._respawn)
            return
        self._respawn()

    def _respawn(self) -> None:
        self._timer = None
        self.restarts += 1
        self._spawn()
        self.rt.notify()

    async def finished(self) -> int:
        """Wait for the current ``wait``/``once``/``test`` run to end; return its exit status."""
        if self._run is None:
            return self.exit if self.exit is not None else 0
        return await asyncio.shield(self._run)

    # ----------------------------------------------------------------------------------------------- stop

    def stop(self) -> asyncio.Task[bool]:
        """Stop the entry (its whole process group and cell; release an agent's resource). The task's result is False
        when something could not be stopped or released. Calling it again while it runs returns the same task."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop())
        return self._stop_task

    async def _stop(self) -> bool:
        self._supervise = False
        self._cancel_timer()
        opts = self.rt.options
        ok = True
        child = self.child
        if child is not None or self.lingering or self.held:
            self._set(STOPPING)
        try:
            if child is not None:
                agent = self.entry.agent is not None
                ok = await child.terminate(opts.agent_stop_steps() if agent else opts.stop_steps())
                if agent and self.mode == "respawn":
                    rc = child.returncode
                    if rc == 0:
                        self._unhold()  # the monitor released on SIGTERM
                    elif rc != EXIT_AGENT_USAGE:
                        self._usage_only = False
                        self.rt.logger.error(
                            "%s: the monitor did not release its resource (%s); running release",
                            self.label,
                            describe_exit(rc),
                        )
            for old in list(self.lingering):
                ok = await old.terminate(opts.stop_steps()) and ok
            self.lingering = [c for c in self.lingering if not c.group_gone()]
            if self.held and self.mode == "respawn" and self._usage_only:
                self._unhold()  # no run got as far as an acquire: nothing to release
            if self.held:
                ok = await self._release() and ok
                self._unhold()
        finally:
            self._stop_task = None
            if self._run is not None and not self._run.done():
                self._run.set_result(self.exit if self.exit is not None else -signal.SIGKILL)
            self._set(OFF if self.mode == "off" else STOPPED)
        return ok

    def mark_failed(self) -> None:
        """Report this stopped ``wait``/``test``/cleanup entry as failed (it was stopped for running too long)."""
        self._set(FAILED)

    async def _release(self) -> bool:
        timeout = self.rt.options.agent_timeout
        try:
            child = Child(
                self._argv("release"),
                self.label,
                self.rt.logger,
                self._env(),
                guard=self.rt.guard,
                cells=self.rt.cells,
                host=self.rt.host,
            )
        except (OSError, ValueError) as exc:
            self.rt.logger.error("%s: cannot start release: %s", self.label, exc)
            return False
        if not await child.wait_gone(timeout):
            self.rt.logger.error(
                "%s: release did not finish within agent_timeout (%gs); killing it", self.label, timeout
            )
            await child.terminate([(signal.SIGTERM, 0.0), (signal.SIGKILL, 2.0)])
            return False
        if child.returncode != 0:
            self.rt.logger.error("%s: release failed (%s)", self.label, describe_exit(child.returncode))
            return False
        self.rt.logger.info("%s: released", self.label)
        return True


def describe_exit(rc: int | None) -> str:
    """``status 1`` or ``killed by SIGTERM``."""
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"status {rc}"
