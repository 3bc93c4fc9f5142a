"""When the daemon is killed with SIGKILL, everything it started dies (the guard), grandchildren included, and
those that left their process group with setsid() too."""

from __future__ import annotations

import json
import logging
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

from omha_core.init.cgroups import CgroupCells, enter_cgroup
from omha_core.init.guard import Releases, group_alive
from omha_core.init.markers import MarkedCells
from tests.core.init_helpers import (
    Records,
    cell_mode,
    group_members,
    make_private_cgroup,
    pid_alive,
    pids_with,
    remove_private_cgroup,
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
    while init.agent_host_pid is not None and not init._rt.host.ready:  # agent actions forked, as in a daemon
        await asyncio.sleep(0.01)
    for group in cltab.groups:
        init.tell(group, "run")
    for group in cltab.groups:
        await init.wait_settled(group, 30)
    guard = init.guard_pid
    cells = init._cells
    print(json.dumps({"guard": guard, "host": init.agent_host_pid, "status": init.status(),
                      "cgroup": getattr(cells, "root", None)}), flush=True)
    while True:
        await asyncio.sleep(0.02)
        if init.guard_pid not in (guard, None):
            guard = init.guard_pid
            print(json.dumps({"guard": guard}), flush=True)

asyncio.run(main())
"""


class Daemon:
    """A python process running a LocalInit, reporting on its stdout."""

    def __init__(self, tmp: Path, cltab: str, options: dict[str, Any], where: str | None = None) -> None:
        """:param where: a cgroup directory to start the daemon in (its init's cgroup tree is made below it)."""
        (tmp / "daemon.py").write_text(DAEMON)
        (tmp / "cltab").write_text(cltab)
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        argv = [sys.executable, str(tmp / "daemon.py"), str(tmp / "cltab"), json.dumps(options)]
        if where is not None:
            argv = enter_cgroup(argv, os.path.join(where, "cgroup.procs"))
        self.proc = subprocess.Popen(
            argv,
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

    def make(cltab: str, where: str | None = None, **options: Any) -> Daemon:
        d = Daemon(tmp_path, cltab, options, where)
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
    if report["host"] is not None:  # the agent host, which forked the @file monitor, died with the rest
        poll(lambda: not pid_alive(report["host"]), what="the agent host to die")


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


def test_sigkill_of_the_daemon_releases_the_resources_of_wait_and_once_agents(
    tmp_path: Path, daemon_factory: Any
) -> None:
    """A ``wait``/``once`` agent holds its resource with no process left: the guard runs its ``release``."""
    first, second = tmp_path / "first", tmp_path / "second"
    cltab = f"g:first:run:wait:@file {first}\ng:second:run:once:@file {second}\ng:after:run:once:sleep 300\n"
    daemon = daemon_factory(cltab)
    report = daemon.read()
    assert report["status"]["g"]["state"] == "DONE"
    daemon.pgids.update(e["pid"] for e in report["status"]["g"]["entries"].values() if e["pid"] is not None)
    poll(lambda: first.exists() and second.exists(), what="both resources to be acquired")
    os.kill(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    poll(lambda: not first.exists() and not second.exists(), what="the guard to release both resources")
    poll(lambda: not pid_alive(report["guard"]), what="the guard to exit")


def test_the_guard_is_told_what_is_held_until_it_is_released(tmp_path: Path) -> None:
    marker, watched = tmp_path / "marker", tmp_path / "watched"
    cltab = f"g:res:run:wait:@file {marker}\ng:mon:run:respawn:@file {watched}\ng:sh:run:once:true\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            assert init._guard is not None
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == "DONE"
            holds = [json.loads(line.split(" ", 1)[1]) for line in init._guard.holds.values()]
            assert [h["label"] for h in holds] == ["g/res", "g/mon"]  # in start order; shell commands hold nothing
            for hold, path in zip(holds, (marker, watched), strict=True):
                assert hold["argv"][-3:] == ["file", "release", str(path)]
                assert hold["env"]["OMHA_GROUP"] == "g" and hold["env"]["OMHA_LEVEL"] == "run"
                assert hold["timeout"] == 60.0
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == "DONE"
            assert init._guard.holds == {}

    run(scenario())


def test_the_guard_releases_in_reverse_order_each_within_its_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, sleeper = tmp_path / "log", unique()
    env = {"PATH": os.environ.get("PATH", "/bin:/usr/bin"), "SECRET": "s3cret"}

    def hold(key: str, command: str, timeout: float = 10.0) -> bytes:
        spec = {"key": key, "label": f"g/{key}", "argv": ["/bin/sh", "-c", command], "env": env, "timeout": timeout}
        return f"hold {json.dumps(spec)}".encode()

    releases = Releases()
    assert releases.read(hold("a", f"echo a:$SECRET >> {log}"))
    assert releases.read(hold("b", f"echo b >> {log}"))
    assert releases.read(hold("gone", f"echo gone >> {log}"))
    assert releases.read(hold("slow", f"echo slow >> {log}; exec sleep {sleeper}", timeout=0.3))
    assert releases.read(hold("bad", f"echo bad >> {log}; exit 4"))
    assert releases.read(b"drop gone")
    assert not releases.read(b'hold {"key": "y", "env": {"SECRET": "s3cret"}')
    assert not releases.read(b'hold {"key": "x", "label": "x", "argv": [], "env": {}, "timeout": 1}')
    assert not releases.read(b"what")
    assert list(releases.specs) == ["a", "b", "slow", "bad"]
    assert releases.release_all() is False  # "bad" failed and "slow" was killed
    assert log.read_text().split() == ["bad", "slow", "b", "a:s3cret"]  # newest first; each with its environment
    assert pids_with(sleeper, "sleep") == []
    said = capsys.readouterr().err
    assert "g/slow: release did not finish within 0.3s; killed it" in said
    assert "g/bad: release failed (exit status 4)" in said and "g/a: released" in said
    assert "s3cret" not in said  # an entry's environment never appears in the guard's messages


def test_a_restarted_init_kills_what_a_dead_init_left_running(daemon_factory: Any, cell_mode: str) -> None:
    """Daemon and guard both killed: their processes run on, unsupervised. The next init on the node (a restarted
    daemon) kills them before it starts anything, so that it never runs a second copy of their group."""
    marker = unique()
    where = make_private_cgroup() if cell_mode == "auto" else None
    try:
        daemon = daemon_factory(
            f"g:a:run:once:sleep {marker}\ng:b:run:respawn:setsid sleep {marker} & wait\n",
            cgroup=cell_mode,
            where=where,
        )
        daemon.marker = marker
        report = daemon.read()
        daemon.pgids.update(e["pid"] for e in report["status"]["g"]["entries"].values() if e["pid"] is not None)
        poll(lambda: len(pids_with(marker, "sleep")) == 2, what="both sleepers")
        left = pids_with(marker, "sleep")
        os.kill(daemon.proc.pid, signal.SIGSTOP)  # a stopped daemon cannot restart its guard
        os.kill(report["guard"], signal.SIGKILL)
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait()
        poll(lambda: not pid_alive(report["guard"]), what="the guard to die")
        assert all(pid_alive(p) for p in left)  # nobody is left to kill them
        # what an init starting in the same cgroup (a restarted daemon) does first
        records = Records()
        logger = logging.getLogger("omha.test.sweep")
        logger.setLevel(logging.DEBUG)
        logger.addHandler(records)
        try:
            cells = CgroupCells(where) if where is not None else MarkedCells()
            cells.sweep(logger)
            cells.close()
        finally:
            logger.removeHandler(records)
        poll(lambda: not any(pid_alive(p) for p in left), what="the new init to kill them")
        assert records.has("left running unsupervised by an init that is gone")
        if where is not None:
            assert not os.path.exists(report["cgroup"])
    finally:
        if where is not None:
            remove_private_cgroup(where)
