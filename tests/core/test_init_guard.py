"""When the daemon is killed with SIGKILL, everything it started dies (the guard), grandchildren included, and
those that left their process group with setsid() too."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omha_core.init.guard import group_alive
from tests.core.init_helpers import (
    cell_mode,
    group_members,
    pid_alive,
    pids_with,
    run,
    running_init,
    unique,
    wait_until,
)

__all__ = ["cell_mode"]  # a fixture: imported so that the tests here can use it

DAEMON = """
import asyncio, json, sys
from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit

async def main():
    with open(sys.argv[1]) as fh:
        cltab = parse_cltab(fh.read())
    init = LocalInit(cltab, options={"stop_grace": [0, 0.3, 0.3], **json.loads(sys.argv[2])})
    await init.start()
    for group in cltab.groups:
        init.tell(group, "run")
    for group in cltab.groups:
        await init.wait_settled(group, 30)
    guard = init.guard_pid
    cells = init._cells
    print(json.dumps({"guard": guard, "status": init.status(), "cgroup": getattr(cells, "root", None)}), flush=True)
    while True:
        await asyncio.sleep(0.02)
        if init.guard_pid not in (guard, None):
            guard = init.guard_pid
            print(json.dumps({"guard": guard}), flush=True)

asyncio.run(main())
"""


class Daemon:
    """A python process running a LocalInit, reporting on its stdout."""

    def __init__(self, tmp: Path, cltab: str, options: dict[str, Any]) -> None:
        (tmp / "daemon.py").write_text(DAEMON)
        (tmp / "cltab").write_text(cltab)
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        self.proc = subprocess.Popen(
            [sys.executable, str(tmp / "daemon.py"), str(tmp / "cltab"), json.dumps(options)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        self.pgids: set[int] = set()
        #: a marker in the command lines of processes to kill when the test ends (those outside every group)
        self.marker: str | None = None

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"the daemon said nothing within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the daemon exited with {self.proc.wait()}")
        data: dict[str, Any] = json.loads(line)
        return data

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        for pgid in self.pgids:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        for pid in pids_with(self.marker, "sleep") if self.marker else []:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    daemons: list[Daemon] = []

    def make(cltab: str, **options: Any) -> Daemon:
        d = Daemon(tmp_path, cltab, options)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.close()


def poll(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def test_sigkill_of_the_daemon_kills_children_and_grandchildren(tmp_path: Path, daemon_factory: Any) -> None:
    marker = tmp_path / "marker"
    cltab = (
        "web:tree:run:respawn:sleep 300 & sleep 300 & wait\n"
        "web:deep:run:once:sh -c 'sleep 300; true' & sleep 300\n"
        f"web:res:run:respawn:@file {marker}\n"
        "db:srv:run:respawn:trap '' INT TERM; sleep 300\n"  # only the guard's SIGKILL stops this one
    )
    daemon = daemon_factory(cltab)
    report = daemon.read()
    status = report["status"]
    assert status["web"]["state"] == "DONE" and status["db"]["state"] == "DONE"
    pgids = [e["pid"] for g in status.values() for e in g["entries"].values()]
    daemon.pgids.update(pgids)
    poll(lambda: marker.exists(), what="the @file resource to be acquired")
    poll(lambda: sum(len(group_members(p)) for p in pgids) >= 8, what="every grandchild to start")
    everyone = [pid for pgid in pgids for pid in group_members(pgid)]

    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    poll(lambda: not any(pid_alive(p) for p in everyone), what="every process the daemon started to die")
    # the guard sends SIGTERM first: the resource agent released its resource
    assert not marker.exists()
    poll(lambda: not pid_alive(report["guard"]), what="the guard to exit")


def test_a_killed_guard_is_restarted_and_still_guards(tmp_path: Path, daemon_factory: Any) -> None:
    daemon = daemon_factory("g:a:run:respawn:sleep 300 & wait\ng:b:run:once:sleep 300\n")
    report = daemon.read()
    pgids = [e["pid"] for e in report["status"]["g"]["entries"].values()]
    daemon.pgids.update(pgids)
    os.kill(report["guard"], signal.SIGKILL)
    new_guard = daemon.read()["guard"]
    assert new_guard != report["guard"] and pid_alive(new_guard)
    # the processes survive the guard's death, and the new guard knows them
    assert all(group_alive(p) for p in pgids)
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    poll(lambda: not any(group_alive(p) for p in pgids), what="the new guard to kill every group")


def test_the_guard_runs_in_its_own_session() -> None:
    """Not in the daemon's process group: a signal to the daemon's group does not take the guard with it."""

    async def scenario() -> None:
        async with running_init("g:a:run:once:true\n") as (init, _):
            guard = init.guard_pid
            assert guard is not None
            await wait_until(lambda: os.getsid(guard) == guard, what="the guard's own session")
            assert os.getsid(guard) != os.getsid(0)

    run(scenario())


def test_sigkill_of_the_daemon_kills_descendants_that_left_their_group(daemon_factory: Any, cell_mode: str) -> None:
    """The guard finds them through the init's cgroup tree (or the environment marker) and removes the tree."""
    marker = unique()
    cltab = (
        f"g:esc:run:once:setsid sleep {marker} &\n"
        f"g:deep:run:respawn:(setsid sh -c 'sleep {marker}2 & exit 0' &); exec sleep 300\n"
        # a respawn monitor that keeps its resource until SIGTERM, beside them
        "g:srv:run:respawn:trap 'exit 0' TERM; sleep 300 & wait\n"
    )
    daemon = daemon_factory(cltab, cgroup=cell_mode)
    daemon.marker = marker
    report = daemon.read()
    daemon.pgids.update(e["pid"] for e in report["status"]["g"]["entries"].values() if e["pid"] is not None)
    poll(lambda: len(pids_with(marker, "sleep")) == 2, what="both escaped sleepers")
    escaped = pids_with(marker, "sleep")
    # out of every process group the guard was told about, and out of the daemon's session
    assert all(os.getpgid(p) not in daemon.pgids and os.getsid(p) != daemon.proc.pid for p in escaped)
    if cell_mode == "auto":
        assert report["cgroup"] is not None and os.path.isdir(report["cgroup"])
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    poll(lambda: not any(pid_alive(p) for p in escaped), what="the guard to kill the escaped sleepers")
    poll(lambda: not pid_alive(report["guard"]), what="the guard to exit")
    if cell_mode == "auto":
        assert not os.path.exists(report["cgroup"])  # the guard removed the init's cgroup tree
