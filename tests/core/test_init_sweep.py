"""An init that starts kills what dead inits (daemon and guard both killed) left running in their cells, and
leaves live inits' cells alone: sibling daemons in the same cgroup, a pid reused by another process, markers."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from omha_core.init.cgroups import CgroupCells
from omha_core.init.guard import cgroup_pids
from omha_core.init.owners import own_name, owner_alive, scope_of, start_time
from tests.core.init_helpers import (
    Records,
    pid_alive,
    pids_with,
    private_cgroup,
    run,
    running_init,
    unique,
    wait_until,
)

__all__ = ["private_cgroup"]  # a fixture: imported so that the tests here can use it


def sleeping(marker: str) -> bool:
    """True while a ``sleep`` with ``marker`` on its command line runs."""
    return bool(pids_with(marker, "sleep"))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def stray() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts as another init's leftovers; killed and reaped at the end, even on failure."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_owners_are_told_by_pid_and_start_time() -> None:
    pid, start = own_name().split("-")
    assert int(pid) == os.getpid() and start_time(os.getpid()) == start.encode()
    assert owner_alive(os.getpid(), start)
    assert not owner_alive(os.getpid(), str(int(start) + 1))  # the same pid, another process: a reused pid
    assert owner_alive(os.getpid(), None)  # a name without a start time: any live process counts
    gone = dead_pid()
    assert not owner_alive(gone, None) and not owner_alive(gone, "1")


def test_dead_inits_cgroup_trees_are_killed_and_removed_live_ones_kept(
    private_cgroup: str, stray: list[subprocess.Popen[bytes]]
) -> None:
    tag = os.urandom(3).hex()
    pid, start = own_name().split("-")
    trees = {
        "dead": f"omha-{dead_pid()}-1-{tag}",
        "reused": f"omha-{pid}-{int(start) + 1}-{tag}",  # our pid, not our start time: another process's
        "old-format-dead": f"omha-{dead_pid()}-{tag}",
        "live": f"omha-{pid}-{start}-{tag}",  # a sibling init of this very process
        "old-format-live": f"omha-{pid}-{tag}",
        "empty-dead": f"omha-{dead_pid()}-2-{tag}",
    }
    trees = {what: os.path.join(private_cgroup, name) for what, name in trees.items()}
    sleepers: dict[str, subprocess.Popen[bytes]] = {}
    for what, tree in trees.items():
        os.makedirs(os.path.join(tree, "1.g.a"))
        if what == "empty-dead":
            continue
        procs = os.path.join(tree, "1.g.a", "cgroup.procs")
        sleepers[what] = subprocess.Popen(["/bin/sh", "-c", f"echo $$ > {procs} && exec sleep {unique()}"])
        stray.append(sleepers[what])
    for what, proc in sleepers.items():
        run(wait_until_in(trees[what], proc.pid))
    records = Records()
    logger = logging.getLogger("omha.test.sweep.cgroup")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)
    cells = CgroupCells(private_cgroup)  # what an init in that cgroup does when it starts
    try:
        cells.sweep(logger)
        for what in ("dead", "reused", "old-format-dead"):
            assert sleepers[what].wait(10) == -signal.SIGKILL, what
            assert not os.path.exists(trees[what]), what
            assert records.has(f"{trees[what]}: killing processes [{sleepers[what].pid}]")
        assert not os.path.exists(trees["empty-dead"]) and records.has(f"removed {trees['empty-dead']}")
        for what in ("live", "old-format-live"):
            assert pid_alive(sleepers[what].pid), what
            assert os.path.isdir(trees[what])
        assert os.path.isdir(cells.root)
    finally:
        logger.removeHandler(records)
        cells.close()


def test_a_tree_that_a_live_guard_names_is_left_to_it(
    private_cgroup: str, stray: list[subprocess.Popen[bytes]]
) -> None:
    """The daemon died but its guard runs (it is stopping the tree right now): the new init leaves the tree alone."""
    tree = os.path.join(private_cgroup, f"omha-{dead_pid()}-1-{os.urandom(3).hex()}")
    os.makedirs(os.path.join(tree, "1.g.a"))
    procs = os.path.join(tree, "1.g.a", "cgroup.procs")
    sleeper = subprocess.Popen(["/bin/sh", "-c", f"echo $$ > {procs} && exec sleep {unique()}"])
    stray.append(sleeper)
    # a stand-in for that guard, in the cgroup the new init runs in: its command line names the tree
    fake_guard = subprocess.Popen(
        [
            "/bin/sh",
            "-c",
            f'echo $$ > {private_cgroup}/cgroup.procs && exec "$@"',
            "sh",
            sys.executable,
            "-c",
            "import time; time.sleep(300)",
            "--cgroup",
            tree,
        ]
    )
    stray.append(fake_guard)
    run(wait_until_in(tree, sleeper.pid))
    cells = CgroupCells(private_cgroup)
    try:
        run(wait_until(lambda: fake_guard.pid in cgroup_pids(private_cgroup), what="the stand-in guard"))
        cells.sweep(logging.getLogger("omha.test.sweep.guarded"))
        assert pid_alive(sleeper.pid) and os.path.isdir(tree)
    finally:
        cells.close()
        sleeper.kill()
        sleeper.wait()
        os.rmdir(os.path.join(tree, "1.g.a"))
        os.rmdir(tree)


async def wait_until_in(tree: str, pid: int) -> None:
    """Wait until ``pid`` has moved itself into the cgroup ``tree``."""

    def inside() -> bool:
        with open(os.path.join(tree, "1.g.a", "cgroup.procs")) as fh:
            return str(pid) in fh.read().split()

    await wait_until(inside, what=f"pid {pid} to enter {tree}")


def test_dead_inits_marked_processes_are_killed_live_ones_kept(
    tmp_path: Path, stray: list[subprocess.Popen[bytes]]
) -> None:
    tag = os.urandom(3).hex()
    markers = {
        "dead": f"{dead_pid()}-1-{tag}.1",
        "reused": f"{os.getpid()}-{int(own_name().split('-')[1]) + 1}-{tag}.1",
        "live": f"{own_name()}-{tag}.1",
        "unknown": f"{dead_pid()}-{tag}.1",  # an older omha's marker (no start time): not recognised
    }
    sleepers = {}
    for what, value in markers.items():
        sleeper = unique()
        # the shell forks the sleeper: its child carries the marker too, and must be killed with it
        proc = subprocess.Popen(["/bin/sh", "-c", f"sleep {sleeper} & wait"], env={**os.environ, "OMHA_CELL": value})
        stray.append(proc)
        sleepers[what] = (proc, sleeper)

    async def scenario() -> None:
        for _, sleeper in sleepers.values():
            await wait_until(partial(sleeping, sleeper), what="the sleepers")
        for proc, sleeper in sleepers.values():  # all alive right before the sweep: what dies, it kills
            assert proc.poll() is None and pids_with(sleeper, "sleep")
        async with running_init("g:a:run:once:true\n", cgroup="off") as (_, records):
            for what in ("dead", "reused"):
                proc, sleeper = sleepers[what]
                # gone within 10 s: SIGKILLed, or exited when its sleeper was killed first and `wait` returned
                # (nothing else ends it: the sleep lasts days); -SIGKILL alone raced with that order
                assert proc.wait(10) in (-signal.SIGKILL, 0, 128 + signal.SIGKILL), what
                await wait_until(lambda: not sleeping(sleeper), what=f"the {what} sleeper to die")  # noqa: B023
            for what in ("live", "unknown"):
                proc, sleeper = sleepers[what]
                assert proc.poll() is None and pids_with(sleeper, "sleep"), what
            assert records.has("left running unsupervised by an init that is gone")

    try:
        run(scenario())
    finally:
        for _, sleeper in sleepers.values():
            for pid in pids_with(sleeper, "sleep"):
                os.kill(pid, signal.SIGKILL)


def test_a_sweep_kills_only_its_own_scopes_leftovers(stray: list[subprocess.Popen[bytes]]) -> None:
    """Two nodes of a local cluster (scopes a and b) on one machine, both their inits gone: node a's restarted
    init kills a's orphans and leaves b's running (only b's restart may judge them), and an unscoped one."""
    from omha_core.init.markers import MarkedCells

    scope_a, scope_b = scope_of("a", "/var/lib/omha/a"), scope_of("b", "/var/lib/omha/b")
    assert scope_a != scope_b and scope_a == scope_of("a", "/var/lib/omha/a")
    tag = os.urandom(3).hex()
    markers = {
        "a": f"{scope_a}-{dead_pid()}-1-{tag}.1",
        "b": f"{scope_b}-{dead_pid()}-1-{tag}.1",
        "unscoped": f"{dead_pid()}-1-{tag}.1",
    }
    sleepers = {}
    for what, value in markers.items():
        sleeper = unique()
        proc = subprocess.Popen(["/bin/sh", "-c", f"sleep {sleeper} & wait"], env={**os.environ, "OMHA_CELL": value})
        stray.append(proc)
        sleepers[what] = (proc, sleeper)
    records = Records()
    logger = logging.getLogger("omha.test.sweep.scoped")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(records)

    async def scenario() -> None:
        for _, sleeper in sleepers.values():
            await wait_until(partial(sleeping, sleeper), what="the sleepers")
        cells = MarkedCells(scope_a)  # node a's init starting again
        try:
            cells.sweep(logger)
            proc, sleeper = sleepers["a"]
            proc.wait(10)  # killed, or exited 0 when its sleep was killed first (its ``wait`` returns)
            await wait_until(lambda: not sleeping(sleeper), what="a's sleeper to die")
            for what in ("b", "unscoped"):
                proc, sleeper = sleepers[what]
                assert proc.poll() is None and pids_with(sleeper, "sleep"), what
            assert cells.token.startswith(f"{scope_a}-")
        finally:
            cells.close()
        cells = MarkedCells(scope_b)  # and node b's
        try:
            cells.sweep(logger)
            sleepers["b"][0].wait(10)
            await wait_until(lambda: not sleeping(sleepers["b"][1]), what="b's sleeper to die")
            assert sleepers["unscoped"][0].poll() is None
        finally:
            cells.close()

    try:
        run(scenario())
    finally:
        logger.removeHandler(records)
        for _, sleeper in sleepers.values():
            for pid in pids_with(sleeper, "sleep"):
                os.kill(pid, signal.SIGKILL)


def test_a_cgroup_sweep_kills_only_its_own_scopes_trees(
    private_cgroup: str, stray: list[subprocess.Popen[bytes]]
) -> None:
    scope_a, scope_b = scope_of("a", "/s/a"), scope_of("b", "/s/b")
    tag = os.urandom(3).hex()
    trees = {
        "a": f"omha-{scope_a}-{dead_pid()}-1-{tag}",
        "b": f"omha-{scope_b}-{dead_pid()}-1-{tag}",
        "unscoped": f"omha-{dead_pid()}-1-{tag}",
    }
    trees = {what: os.path.join(private_cgroup, name) for what, name in trees.items()}
    sleepers: dict[str, subprocess.Popen[bytes]] = {}
    for what, tree in trees.items():
        os.makedirs(os.path.join(tree, "1.g.a"))
        procs = os.path.join(tree, "1.g.a", "cgroup.procs")
        sleepers[what] = subprocess.Popen(["/bin/sh", "-c", f"echo $$ > {procs} && exec sleep {unique()}"])
        stray.append(sleepers[what])
    for what, proc in sleepers.items():
        run(wait_until_in(trees[what], proc.pid))
    cells = CgroupCells(private_cgroup, scope_a)
    try:
        cells.sweep(logging.getLogger("omha.test.sweep.scoped-cgroup"))
        assert sleepers["a"].wait(10) == -signal.SIGKILL and not os.path.exists(trees["a"])
        for what in ("b", "unscoped"):
            assert pid_alive(sleepers[what].pid) and os.path.isdir(trees[what]), what
    finally:
        cells.close()
        for what in ("b", "unscoped"):
            sleepers[what].kill()
            sleepers[what].wait()
            deadline = time.monotonic() + 5
            while os.path.exists(trees[what]) and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(trees[what], "1.g.a"))
                    os.rmdir(trees[what])
