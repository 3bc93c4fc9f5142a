"""The init's side of the agent host (:mod:`omha_core.agent_host`): resource-agent actions forked, not started.

The init starts one host process (in a cell of its own, inside the init's cgroup tree, so the guard kills it
with everything else if the daemon dies) and asks it to fork each agent action into the action's own cell.
What an action is to the rest of the init does not change (:class:`~omha_core.init.child.Child`): its own
session and process group, its own cgroup, its output on a pipe the init reads, a pidfd the init watches, the
same signals, time-outs and stop steps; the guard kills its cgroup and releases held entries if the daemon
dies. What changes is who reaps it: the host, its parent, reports its exit status and reaps it once the init
says it has handled the exit (until then the pid stays taken, as for a child the init reaps itself).

Only with cgroup cells: a cgroup holds a forked process whatever its parent is, but the environment marker
(:mod:`omha_core.init.markers`) is read from ``/proc/PID/environ``, which a fork cannot set; with markers every
action is started as a process of its own, as before.

The daemon's event loop must not stall (its heartbeats stop while it does), so the init asks the host only
once the host has said it is ready (its imports done), and waits at most :data:`ANSWER_TIMEOUT` for a fork.
A host that finds threads after importing the agents (a plugin started one at import: forking then is unsafe)
exits saying so, and the init starts every action itself from then on. When the host fails (it died, or did
not answer in time), the action is started as a process of its own instead, the host is killed, and a new one
is started for later actions (at most once per :data:`RESTART_DELAY`). An action whose host died before
reporting its exit is taken to have failed (status 255, as for a child someone else reaped): a ``release`` is
then not believed done.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from omha_core.init.cells import Cells
from omha_core.init.child import Child

#: seconds the init waits for the host to fork an action (the event loop waits with it) before giving up on it
ANSWER_TIMEOUT = 1.0
#: seconds between two starts of the host after it failed
RESTART_DELAY = 30.0
#: what the init starts for an agent action: ``python -m omha_core.agent NAME ACTION ARGS``
AGENT_PREFIX = ("-m", "omha_core.agent")


class HostError(OSError):
    """The host could not fork the action (it is gone, stuck, or refused the request)."""


def agent_argv(argv: Sequence[str]) -> list[str] | None:
    """``[NAME, ACTION, ARGS]`` when ``argv`` runs an agent action as the init starts it, else None."""
    if len(argv) == 6 and argv[0] == sys.executable and tuple(argv[1:3]) == AGENT_PREFIX:
        return list(argv[3:])
    return None


class Link:
    """The socket to one host process, and the exit statuses of the children it forked.

    A status is handed to its waiter in a callback of its own (``call_soon``), never from inside
    :meth:`AgentHost.fork`: the waiter's entry may start its next action at once, and a fork asked for while
    another waits for its answer would read that answer as its own.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock: socket.socket | None = sock
        #: the host said its imports are done
        self.ready = False
        #: exit statuses received for children whose exit the init has not handled yet
        self.statuses: dict[int, int] = {}
        #: who waits for a child's status (its pidfd showed the exit before the host's message came)
        self.waiters: dict[int, Callable[[int | None], None]] = {}

    def wait_status(self, pid: int, callback: Callable[[int | None], None]) -> None:
        """Call ``callback`` with the wait status of child ``pid`` (which has exited) once this host reports it:
        at once if it has; None if the host is gone and never will."""
        if pid in self.statuses:
            callback(self.statuses.pop(pid))
        elif self.sock is None:
            callback(None)
        else:
            self.waiters[pid] = callback

    def reaped(self, pid: int) -> None:
        """The init has handled child ``pid``'s exit: the host may reap it (its number free again)."""
        if self.sock is None:
            return  # the host is gone: its zombies went to init(1), which reaps them
        try:
            self.sock.send(json.dumps({"reap": pid}).encode())
        except OSError:
            pass  # the host is dying; the same

    def received(self, message: dict[str, int]) -> None:
        """A message the host sent outside an answer: it is ready, or a child exited."""
        if message.get("ready"):
            self.ready = True
            return
        pid, status = int(message["exit"]), int(message["status"])
        waiter = self.waiters.pop(pid, None)
        if waiter is not None:
            asyncio.get_running_loop().call_soon(waiter, status)
        else:
            self.statuses[pid] = status

    def close(self) -> None:
        """The host is gone (or no longer trusted): no status will come any more."""
        sock, self.sock = self.sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        waiters, self.waiters = self.waiters, {}
        for callback in waiters.values():
            asyncio.get_running_loop().call_soon(callback, None)


class AgentHost:
    """One init's agent host: started with :meth:`start`, asked with :meth:`fork`, stopped with :meth:`close`."""

    def __init__(self, logger: logging.Logger, cells: Cells, env: Mapping[str, str]) -> None:
        self.logger = logger
        self.cells = cells
        self.env = dict(env)
        self._link: Link | None = None
        self._child: Child | None = None
        self._started = float("-inf")
        self._closing = False
        #: the host said it must not fork here (see :data:`~omha_core.agent_host.EXIT_UNFIT`)
        self._unfit = False

    @property
    def pid(self) -> int | None:
        """The host's pid while it runs."""
        return self._child.pid if self._child is not None and self._child.alive else None

    @property
    def ready(self) -> bool:
        """True while a host runs that has said it is ready."""
        return self._link is not None and self._link.ready

    def start(self) -> None:
        """Start the host process (in the running event loop); it is used once it says it is ready.

        :raises OSError: it could not be started.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", "omha_core.agent_host"]
        self._started = time.monotonic()
        try:
            self._child = Child(
                argv,
                "agent-host",
                self.logger,
                self.env,
                on_exit=self._exited,
                cells=self.cells,
                stdin_fd=theirs.fileno(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        link = self._link = Link(ours)
        self._child.loop.add_reader(ours.fileno(), self._readable, link)
        self.logger.debug("agent host started (pid %d)", self._child.pid)

    def accepts(self, argv: Sequence[str]) -> bool:
        """True when ``argv`` is an agent action and the host can fork it now."""
        return agent_argv(argv) is not None and self.usable()

    def usable(self) -> bool:
        """True when an action may be asked of the host now (starting a new host if the last one failed long
        enough ago; a host is used once it has said it is ready)."""
        if self._closing or self._unfit:
            return False
        if self._link is not None:
            return self._link.ready
        if time.monotonic() - self._started < RESTART_DELAY:
            return False
        try:
            self.start()
        except OSError as exc:
            self.logger.warning("cannot start the agent host: %s; agent actions start a process each", exc)
        return False

    def fork(self, argv: Sequence[str], env: Mapping[str, str], procs: str, out: int) -> tuple[int, int, Link]:
        """Have the host fork agent action ``argv`` (as the init would start it, see :meth:`accepts`) with ``env``,
        inside the cgroup whose ``cgroup.procs`` is ``procs``, its output on ``out``; return its pid, a pidfd of it,
        and the link that will report its exit.

        Blocks until the host answers (a fork: a millisecond or two), at most :data:`ANSWER_TIMEOUT` seconds.

        :raises HostError: the host did not fork it; the caller must kill the cell (a child may have started)
            and start the action itself.
        """
        action = agent_argv(argv)
        link = self._link
        if action is None:
            raise HostError(f"not an agent action: {argv!r}")
        if link is None or link.sock is None:
            raise HostError("the agent host is not running")
        sock = link.sock
        try:
            cwd: str | None = os.getcwd()
        except OSError:
            cwd = None  # the daemon's working directory was removed: the action runs where the host does
        request = json.dumps({"argv": action, "env": dict(env), "procs": procs, "cwd": cwd}).encode()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        poll = select.poll()  # not select(): a daemon with many entries has descriptors above FD_SETSIZE
        poll.register(sock, select.POLLIN)
        try:
            socket.send_fds(sock, [request], [out])
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not poll.poll(left * 1000):
                    raise HostError(f"the agent host did not answer within {ANSWER_TIMEOUT:g} s")
                data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
                if not data:
                    raise HostError("the agent host closed its socket")
                message = json.loads(data)
                if "pid" in message and len(fds) == 1:
                    return int(message["pid"]), fds[0], link
                for fd in fds:
                    os.close(fd)
                if "error" in message:
                    raise HostError(f"the agent host refused the action: {message['error']}")
                link.received(message)
        except HostError as exc:
            self._broken(str(exc))
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._broken(f"{type(exc).__name__}: {exc}")
            raise HostError(str(exc)) from None

    def _readable(self, link: Link) -> None:
        """Messages the host sent while no action was being asked for: ready, and exit statuses."""
        while link.sock is not None:
            try:
                data = link.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                self._broken(f"{type(exc).__name__}: {exc}")
                return
            if not data:
                self._broken("the agent host closed its socket")
                return
            try:
                message = json.loads(data)
                if "unfit" in message:  # it would refuse again: no restarts
                    self._unfit = True
                    self._broken(None)
                    self.logger.warning(
                        "agent host: %s; every agent action starts a process of its own", message["unfit"]
                    )
                    return
                link.received(message)
            except (ValueError, KeyError, TypeError):
                self.logger.error("agent host: unexpected message %r", data[:200])

    def _broken(self, why: str | None) -> None:
        """Stop using the host: close its socket (it exits on that), kill it, fail every status still awaited;
        say ``why`` (unless None, or the init is closing)."""
        link, self._link = self._link, None
        if link is not None:
            if why is not None and not self._closing:
                self.logger.warning("agent host: %s; agent actions start a process each for now", why)
            link.close()
        if self._child is not None and self._child.alive:
            self._child.signal(signal.SIGKILL)

    def _exited(self, child: Child) -> None:
        if child is not self._child:
            return
        self._broken(f"the agent host (pid {child.pid}) exited ({child.returncode})")

    async def close(self) -> None:
        """Stop the host (the init stops: its actions are over)."""
        self._closing = True
        self._broken(None)
        if self._child is not None:
            await self._child.terminate([(signal.SIGKILL, 0.0)])
