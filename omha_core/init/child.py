"""One operating-system process started by the init, and how it is stopped.

Each child is started with ``posix_spawn`` in a new session (so its process group is its own and every
process it forks can be signalled at once) and inside its own *cell* (:mod:`omha_core.init.cells`: a cgroup
v2, or an environment marker where cgroups are unavailable) that also holds the descendants that leave the
process group with ``setsid()``, with stdin on ``/dev/null``, stdout and stderr on a pipe read by a
:class:`~omha_core.init.output.LineLogger`, every signal disposition reset to the default (a daemon started
from a script with ``&`` ignores SIGINT, and children would inherit that), and an empty signal mask.

Exit is noticed through a pidfd watched by the event loop: no thread, no SIGCHLD handler, and no
``waitpid(-1)`` that could steal another part of the daemon's children. The child is reaped with
``waitpid(pid)`` as soon as it exits, so the init never leaves a zombie of its own.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from omha_core.init.cells import Cell, Cells
from omha_core.init.guard import group_alive, signal_group
from omha_core.init.output import LineLogger

#: every catchable signal: reset to its default action in the child
_DEFAULT_SIGNALS = frozenset(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}
#: seconds to wait for a process group to vanish after SIGKILL before calling it stuck
AFTER_KILL = 5.0


class Registry(Protocol):
    """Who is told about process groups (the guard)."""

    def add(self, pgid: int) -> None: ...

    def remove(self, pgid: int) -> None: ...


class ExitReporter(Protocol):
    """Who reports the exit status of a child the init did not start itself (the agent host's link), and reaps
    it once told to."""

    def wait_status(self, pid: int, callback: Callable[[int | None], None]) -> None: ...

    def reaped(self, pid: int) -> None: ...


class Forker(Protocol):
    """Who forks a child for the init instead of its being started (the agent host, :mod:`omha_core.init.host`)."""

    def accepts(self, argv: Sequence[str]) -> bool: ...

    def fork(
        self, argv: Sequence[str], env: Mapping[str, str], procs: str, out: int
    ) -> tuple[int, int, ExitReporter]: ...


def _above_stdio(fd: int) -> int:
    """``fd`` moved to 3 or above, so that dup2 onto 0-2 in the child cannot clobber it (daemon with closed stdio)."""
    if fd > 2:
        return fd
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    os.close(fd)
    return new


def _spawn(argv: Sequence[str], env: Mapping[str, str], stdin_fd: int | None) -> tuple[int, int]:
    """Start ``argv`` in a new session; return its pid and the read end of its output pipe."""
    r, w = os.pipe2(os.O_CLOEXEC)
    r, w = _above_stdio(r), _above_stdio(w)
    stdin: tuple[int, ...] | tuple[int, int, str, int, int]
    if stdin_fd is None:
        stdin = (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
    else:
        stdin = (os.POSIX_SPAWN_DUP2, stdin_fd, 0)
    actions = [stdin, (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, w, 2)]
    try:
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            env,
            file_actions=actions,
            setsid=True,
            setsigdef=_DEFAULT_SIGNALS,
            setsigmask=(),
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return pid, r


class Child:
    """A running (or exited) child process, its process group and its cell.

    :param argv: program and arguments; ``argv[0]`` must be an absolute path.
    :param label: how its output lines and messages are tagged (``group/tag``).
    :param on_exit: called in the event loop once the process has exited and been reaped.
    :param guard: told about the process group so that it dies with the daemon.
    :param cells: where to make the child's cell (None: its process group only, as for the guard itself).
    :param stdin_fd: a file descriptor for its stdin instead of ``/dev/null``.
    :param host: the agent host, to fork a resource-agent action (``python -m omha_core.agent ...``) into a cgroup
        cell instead of starting Python for it (:mod:`omha_core.init.host`); other programs are started as usual.
    :raises OSError: the program could not be started, or its cell not made.
    """

    def __init__(
        self,
        argv: Sequence[str],
        label: str,
        logger: logging.Logger,
        env: Mapping[str, str],
        *,
        on_exit: Callable[[Child], None] | None = None,
        guard: Registry | None = None,
        cells: Cells | None = None,
        stdin_fd: int | None = None,
        host: Forker | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.label = label
        self.logger = logger
        self.cell: Cell | None = None
        #: the link to the agent host that forked this child and reports its exit (None: the init's own child)
        self.host: ExitReporter | None = None
        pidfd: int | None = None  # the host's pidfd of a forked child
        if cells is not None:
            self.cell = cells.new(label)
            hosted = None if host is None else self._from_host(host, cells, argv, env)
            if hosted is not None:
                self.pid, out, pidfd = hosted
            else:
                argv, env = self.cell.prepare(argv, env)
        if pidfd is None:
            try:
                self.pid, out = _spawn(argv, env, stdin_fd)
            except BaseException:
                if self.cell is not None:
                    self.cell.remove()
                raise
        self.pgid = self.pid
        if self.cell is not None:
            self.cell.attach(self.pid)
        self.started = time.monotonic()
        self.returncode: int | None = None
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self._on_exit = on_exit
        self._guard = guard
        self._gone = False
        if guard is not None:
            guard.add(self.pgid)
        self.output = LineLogger(out, label, logger, self.loop)
        if pidfd is None:
            try:
                pidfd = os.pidfd_open(self.pid)
            except OSError:
                # without a pidfd (Linux < 5.3) nothing would ever reap it: do not leave it running unsupervised
                self._send(signal.SIGKILL)
                os.waitpid(self.pid, 0)
                if self.cell is not None:
                    self.cell.remove()
                raise
        self._pidfd = pidfd
        self.loop.add_reader(self._pidfd, self._reap)

    def _from_host(
        self, host: Forker, cells: Cells, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[int, int, int] | None:
        """Have ``host`` fork ``argv`` into this child's cell if it takes it and the cell is a cgroup; its pid, the
        read end of its output pipe and its pidfd, or None to start it as a process of its own."""
        assert self.cell is not None
        if self.cell.procs is None or not host.accepts(argv):
            return None
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            pid, pidfd, self.host = host.fork(argv, env, self.cell.procs, w)
        except OSError:
            os.close(r)
            # the host may have forked it before it failed: nothing of that cell may run on; start afresh
            self.cell.signal(signal.SIGKILL)
            self.cell.remove()  # if still busy, the init's close removes it with its whole tree
            self.cell = cells.new(self.label)
            return None
        finally:
            os.close(w)
        return pid, _above_stdio(r), pidfd

    @property
    def alive(self) -> bool:
        """True until the process itself has exited (its group may outlive it)."""
        return self.returncode is None

    def _reap(self) -> None:
        if self.host is not None:  # its parent, the host, reaps it and reports how it ended
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self.host.wait_status(self.pid, self._reported)
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.logger.warning("%s: pid %d was reaped by someone else; exit status unknown", self.label, self.pid)
            pid, status = self.pid, 255 << 8
        if pid == 0:
            return
        self.loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._ended(status)

    def _reported(self, status: int | None) -> None:
        """The host's report of how this child ended (None: the host is gone without saying); the host reaps it
        once the exit is handled here, as :meth:`_reap` does for the init's own children."""
        if status is None:
            self.logger.warning(
                "%s: pid %d exited, but the agent host is gone: exit status unknown", self.label, self.pid
            )
            status = 255 << 8
        try:
            self._ended(status)
        finally:
            if self.host is not None:
                self.host.reaped(self.pid)

    def _ended(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)
        self.exited.set_result(self.returncode)
        if self._on_exit is not None:
            try:
                self._on_exit(self)
            except Exception:
                self.logger.exception("%s: internal error handling the exit of pid %d", self.label, self.pid)

    def group_gone(self) -> bool:
        """True when the process has exited and no live process is left in its process group or its cell."""
        if self._gone:
            return True
        if self.alive or (self.cell is not None and self.cell.populated()) or group_alive(self.pgid):
            return False
        self._gone = True
        if self.cell is not None:
            self.cell.remove()
        if self._guard is not None:
            self._guard.remove(self.pgid)
        return True

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group and to every other process of the cell (unless all is known to
        be gone; each process gets it once); SIGKILL kills the whole cell at once (``cgroup.kill``)."""
        if self._gone:
            return  # found gone before: the number may belong to a new process group by now
        self._send(sig)

    def _send(self, sig: int) -> None:
        signal_group(self.pgid, sig)
        if self.cell is not None:
            self.cell.signal(sig)

    async def wait_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the process and its whole group to be gone; True if they are."""
        deadline = time.monotonic() + timeout
        if self.alive:
            try:
                await asyncio.wait_for(asyncio.shield(self.exited), max(timeout, 0.0))
            except TimeoutError:
                return False
        pause = 0.005
        while not self.group_gone():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 0.1)
        return True

    async def terminate(self, steps: Sequence[tuple[int, float]]) -> bool:
        """Stop the whole process group and cell: for each ``(signal, delay)`` wait ``delay`` seconds for it to be
        gone, else send the signal; after the last one wait up to :data:`AFTER_KILL`, sending the last signal
        again now and then (a cell tracked through /proc may show a straggler only later). True when all is gone."""
        for sig, delay in steps:
            if await self.wait_gone(delay):
                return True
            self.signal(sig)
        deadline = time.monotonic() + AFTER_KILL
        while not await self.wait_gone(min(0.2, max(deadline - time.monotonic(), 0.0))):
            if time.monotonic() >= deadline:
                self.logger.error("%s: processes of pid %d are still alive after SIGKILL", self.label, self.pgid)
                return False
            if steps:
                self.signal(steps[-1][0])
        return True
