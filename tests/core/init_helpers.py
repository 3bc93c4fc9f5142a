"""Helpers for the local-init tests: run an init on a cltab text, probe commands, poll for conditions.

Every init started with :func:`running_init` is shut down when the block ends, even on failure, and any
process group it still knows is killed, so a failing test leaves no process behind.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit
from omha_core.init.cgroups import cgroup2_parent
from omha_core.init.guard import cgroup_kill, cgroup_populated, group_alive, remove_cgroup

#: fast stops for tests: SIGINT at once, SIGTERM after 0.3 s, SIGKILL after 0.3 s more
FAST = {"stop_grace": [0, 0.3, 0.3]}
_ids = itertools.count()


class Records(logging.Handler):
    """Collects log messages."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in m for m in self.messages)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one test scenario in a fresh event loop."""
    return asyncio.run(coro)


@asynccontextmanager
async def running_init(
    cltab: str,
    *,
    config_path: str | None = None,
    on_change: Callable[[], None] | None = None,
    env: dict[str, str] | None = None,
    **options: Any,
) -> AsyncIterator[tuple[LocalInit, Records]]:
    """A started :class:`LocalInit` on ``cltab`` (text) with ``FAST`` stops unless overridden, and its log;
    ``env`` is added to every child's environment."""
    records = Records()
    logger = logging.getLogger(f"omha.test.init{next(_ids)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(records)
    init = LocalInit(
        parse_cltab(cltab),
        options={**FAST, **options},
        logger=logger,
        env=env,
        config_path=config_path,
        on_change=on_change,
    )
    await init.start()
    try:
        yield init, records
    finally:
        pgids = set(init._guard.pgids) if init._guard is not None else set()
        try:
            await asyncio.wait_for(init.shutdown(), 30)
        finally:
            for pgid in pgids:
                if group_alive(pgid):
                    os.killpg(pgid, signal.SIGKILL)
            if init._cells is not None:
                init._cells.close()  # whatever left its process group, and the init's cgroup directories
            logger.removeHandler(records)


async def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def probe(tag: str, log: str) -> str:
    """A shell command that appends ``start:TAG`` to ``log``, runs until stopped, and appends ``stop:TAG``
    when it gets SIGINT or SIGTERM."""
    on_stop = f"echo stop:{tag} >> {log}; kill $! 2>/dev/null; exit 0"
    return f"trap '{on_stop}' INT TERM; echo start:{tag} >> {log}; sleep 300 & wait"


def events(log: str) -> list[str]:
    """The lines a :func:`probe` wrote so far."""
    try:
        with open(log) as fh:
            return fh.read().split()
    except FileNotFoundError:
        return []


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def _proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/PID/stat after the command name) for every process still readable."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                yield int(name), fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    return [pid for pid, fields in _proc_stats() if int(fields[2]) == pgid and fields[0] not in ("Z", "X")]


def pids_with(text: str, comm: str | None = None) -> list[int]:
    """Live processes whose command line contains ``text`` (a marker unique to the test), and whose command name
    is ``comm`` if given (``sleep``, not the shell whose command line holds the same marker)."""
    found = []
    needle = text.encode()
    for pid, fields in _proc_stats():
        if fields[0] in ("Z", "X"):
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if needle not in fh.read():
                    continue
            if comm is not None:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() != comm:
                        continue
        except OSError:
            continue
        found.append(pid)
    return found


def zombie_children(ppid: int | None = None) -> list[int]:
    """Zombie processes whose parent is ``ppid`` (this process by default)."""
    ppid = os.getpid() if ppid is None else ppid
    return [pid for pid, fields in _proc_stats() if fields[0] == "Z" and int(fields[1]) == ppid]


def unique() -> str:
    """A sleep duration no other process on the machine uses: the marker that finds a test's sleepers in /proc."""
    return f"1000.{random.randrange(10**8):08d}"


@pytest.fixture(params=["auto", "off"], ids=["cgroup", "marker"])
def cell_mode(request: pytest.FixtureRequest) -> str:
    """``auto`` (a cgroup per child; must be available where it is tested) or ``off`` (the marker fallback)."""
    mode: str = request.param
    if mode == "auto":
        require_cgroup2()
    return mode


def require_cgroup2() -> None:
    """Skip unless this process may create cgroups on a cgroup2 mount (root on CI machines)."""
    parent, why = cgroup2_parent()
    if parent is None:
        pytest.skip(f"needs a writable cgroup v2 mount: {why}")


def make_private_cgroup() -> str:
    """A cgroup of the test's own below this process's (``omha-test-<hex>``), so that the sweeps of inits that
    other test runs start meanwhile (each looks at its own cgroup's children only) never touch what a test puts
    in it. Remove it with :func:`remove_private_cgroup`."""
    require_cgroup2()
    parent, _ = cgroup2_parent()
    assert parent is not None
    path = os.path.join(parent, f"omha-test-{os.urandom(3).hex()}")
    os.mkdir(path)
    return path


def remove_private_cgroup(path: str) -> None:
    """Kill whatever is left in the cgroup ``path`` (and below) and remove it."""
    cgroup_kill(path)
    deadline = time.monotonic() + 10
    while cgroup_populated(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    remove_cgroup(path)


@pytest.fixture
def private_cgroup() -> Iterator[str]:
    """:func:`make_private_cgroup`, removed at the end even on failure."""
    path = make_private_cgroup()
    try:
        yield path
    finally:
        remove_private_cgroup(path)
