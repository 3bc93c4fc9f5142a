"""The agent host: a long-lived process that runs resource-agent actions by forking, not by starting Python.

``python -m omha_core.agent_host``, started by the local init (:mod:`omha_core.init.host`) with a
``SOCK_SEQPACKET`` socket on its stdin. Each action of an ``@name args`` entry (acquire, check, release,
respawn) used to be ``python -m omha_core.agent ...``: a new interpreter that imports omha and the agent's
plugin before doing a few milliseconds of work, 0.1 to 0.5 s on the failover's critical path. The host has
imported all that once; an action is a ``fork()`` of it that runs :func:`omha_core.agent.run`.

What the init asks, and what it gets (one JSON document per message):

- ``{"argv": [NAME, ACTION, ARGS], "env": {...}, "procs": PATH, "cwd": DIR or null}`` with the write end of the
  output pipe attached (``SCM_RIGHTS``). The host forks; the child, before it runs anything, starts a new
  session (its process group is its own, as ``posix_spawn(setsid)`` gave it), moves itself into the entry's
  cgroup (writing to ``PATH``, the cell's ``cgroup.procs``: a cgroup holds a process whatever its parent is),
  puts stdin on ``/dev/null`` and stdout/stderr on the pipe, resets every signal and the signal mask, takes
  ``env`` as its environment and ``DIR`` as its working directory, and closes every other descriptor. Only then
  does the host answer ``{"pid": PID}`` with a pidfd of the child attached, so the init can signal the child's
  group and cell from the moment it knows the pid, and the pidfd names this very process even after it is
  reaped. A child that cannot enter its cgroup says why on its stderr and exits 126 without running the action,
  as the init's ``/bin/sh`` does.
- ``{"exit": PID, "status": STATUS}``, sent when a child exited (``STATUS`` as ``waitpid`` gives it). The host
  is its parent, but leaves it a zombie until the init answers ``{"reap": PID}`` once it has handled the exit:
  until then the number stays taken, as a child the init started stays until the init reaps it.
- ``{"ready": true}``, sent once, when the imports are done: the init asks nothing of a host before that (its
  event loop waits for each answer, and must not wait for imports); or ``{"unfit": WHY}``, after which the host
  exits: it must not fork (see below).

The host is single-threaded (forking a threaded process is unsafe: an agent module whose import starts a thread
makes the host exit :data:`EXIT_UNFIT`, and the init start every action instead) and keeps no state between
actions that an action could change: each child is a copy. When its socket closes (the init stopped, or the daemon died)
the host exits; children still running are not its to stop: each is in its own cgroup, which the init stops,
and which the guard kills if the daemon dies.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

from omha_core import agent

#: the largest message the init sends (the environment is most of it)
MAX_MESSAGE = 1 << 20
#: the exit status of a child that could not enter its cgroup (it ran nothing): :data:`.init.cgroups.EXIT_NO_CGROUP`,
#: not imported from there (importing anything of ``omha_core.init`` loads the whole init, ~80 ms and its memory)
EXIT_NO_CGROUP = 126
#: the host's exit status when it must not fork (an agent's import started a thread; it says so first with an
#: ``{"unfit": WHY}`` message, and the init then starts every action as a process of its own, and no host again)
EXIT_UNFIT = 3


def preload() -> None:
    """Import every agent class the daemon named in ``$OMHA_AGENT_CLASSES`` (and what they import), so that no
    forked action imports it again."""
    for word in os.environ.get(agent.CLASSES_ENV, "").split():
        name = word.partition("=")[0]
        try:
            agent._class_from_env(name)
        except Exception as exc:  # an action of this agent will say it; the others must still work
            print(f"agent host: cannot import agent {name!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
    import tomllib  # noqa: F401 (agent options are read from omha.toml in every action)


def _enter(procs: str) -> str | None:
    """Move this process into the cgroup whose ``cgroup.procs`` is ``procs``; None, or why it failed."""
    try:
        fd = os.open(procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")  # "0": the writing process itself
        finally:
            os.close(fd)
    except OSError as exc:
        return f"cannot move into the cgroup {os.path.dirname(procs)}: {exc.strerror}"
    return None


def _name_self(name: str) -> None:
    """Show ``name`` as this process's name (``ps -e``, ``top``; its command line stays the host's)."""
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(name[:15])  # the kernel keeps 15 bytes
    except OSError:
        pass  # cosmetic


def _child(request: dict[str, Any], out: int, ready: int, keep_open: list[Any]) -> NoReturn:
    """The forked action: become what ``posix_spawn`` would have made it, tell the host, run the agent."""
    code = agent.EXIT_FAILED
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for obj in keep_open:  # the host's socket and selector: closed here, not by a garbage collection later
            obj.close()
        os.closerange(3, ready)
        os.closerange(ready + 1, os.sysconf("SC_OPEN_MAX"))
        for sig in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # a signal Python may not touch
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # ignored by every Python at start-up (an error, not death)
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.environ.clear()
        os.environ.update(request["env"])
        cwd = request.get("cwd")
        if cwd is not None:  # None: the daemon's was removed; a started process would run in it all the same
            try:
                os.chdir(cwd)  # the daemon's, as a started process has it
            except OSError:
                pass  # removed meanwhile: the host's will do
        why = _enter(request["procs"])
        os.write(ready, b".")
        os.close(ready)
        if why is not None:
            print(why, file=sys.stderr)
            code = EXIT_NO_CGROUP
        else:
            name, action, args = request["argv"]
            sys.argv = [agent.__file__, name, action, args]
            _name_self(f"@{name} {action}")
            code = agent.run(name, action, args)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _fork(request: dict[str, Any], out: int, keep_open: list[Any]) -> tuple[int, int]:
    """Fork the action of ``request``; return its pid and a pidfd, once it runs in its own session and cgroup."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _child(request, out, w, keep_open)
    os.close(w)
    try:
        os.read(r, 1)  # "." once it is set up; nothing (EOF) if it died before: its exit is reported as usual
    finally:
        os.close(r)
    return pid, os.pidfd_open(pid)


def serve(sock: socket.socket) -> None:
    """Answer the init on ``sock`` until it closes it."""
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    children: dict[int, int] = {}  # pidfd -> pid, running
    exited: dict[int, int] = {}  # pid -> pidfd, exited and reported, left a zombie until the init says "reap"
    while True:
        for key, _ in sel.select():
            if key.fileobj is sock:
                try:
                    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, 1)
                except ConnectionResetError:
                    data, fds = b"", []
                if not data:
                    return
                try:
                    request = json.loads(data)
                    if "reap" in request:
                        _reap(int(request["reap"]), exited)
                        continue
                    if len(fds) != 1:
                        raise ValueError("expected the output pipe with the request")
                    pid, pidfd = _fork(request, fds[0], [sock, sel])
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    sock.send(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                    continue
                finally:
                    for fd in fds:
                        os.close(fd)
                socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
                children[pidfd] = pid
                sel.register(pidfd, selectors.EVENT_READ)
            else:
                pidfd = int(key.fd)
                pid = children[pidfd]
                status = _exit_status(pid)
                if status is None:
                    continue
                sel.unregister(pidfd)
                del children[pidfd]
                exited[pid] = pidfd
                sock.send(json.dumps({"exit": pid, "status": status}).encode())


def _exit_status(pid: int) -> int | None:
    """The wait status of child ``pid`` if it has exited, without reaping it (None while it runs).

    Not reaped: until the init has handled the exit, the number must stay this process's (a zombie), as it does
    for a child the init started and reaps itself; a reaped number could be reused and signalled by mistake.
    """
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    if info is None or info.si_pid == 0:
        return None
    if info.si_code == os.CLD_EXITED:
        return (info.si_status & 0xFF) << 8
    return info.si_status | (0x80 if info.si_code == os.CLD_DUMPED else 0)


def _reap(pid: int, exited: dict[int, int]) -> None:
    """The init has handled child ``pid``'s exit: reap it, its number free again."""
    pidfd = exited.pop(pid, None)
    if pidfd is not None:
        os.waitpid(pid, 0)
        os.close(pidfd)


def main() -> int:
    """Entry point: serve the init on the socket that is this process's stdin."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sock = socket.socket(fileno=os.dup(0))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    preload()
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        # a fork copies one thread and every lock the others held: a forked action could hang on one of them
        why = f"importing the agents started threads {threads}: not forking"
        try:
            sock.send(json.dumps({"unfit": why}).encode())
        except OSError:
            pass  # the init is gone
        return EXIT_UNFIT
    try:
        sock.send(b'{"ready": true}')
        serve(sock)
    except BrokenPipeError:
        pass  # the init closed its end while we answered
    return 0


if __name__ == "__main__":
    sys.exit(main())
