"""Cells: a stop reaches descendants that left their process group with setsid(), through a cgroup v2 per child
where the machine offers one and through the environment marker elsewhere; and the stop sends SIGTERM between
SIGINT and SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.init import DONE, InitOptions
from omha_core.init.cgroups import EXIT_NO_CGROUP, CgroupCells, cgroup2_parent, enter_cgroup
from omha_core.init.choose import open_cells
from tests.core.init_helpers import (
    cell_mode,
    group_members,
    pid_alive,
    pids_with,
    require_cgroup2,
    run,
    running_init,
    unique,
    wait_until,
    zombie_children,
)

__all__ = ["cell_mode"]  # a fixture: imported so that the tests here can use it


@pytest.fixture
def sleepers() -> Iterator[list[str]]:
    """Markers of the sleepers a test starts; any still alive at the end are killed (even on failure)."""
    markers: list[str] = []
    yield markers
    for marker in markers:
        for pid in pids_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def own_cgroup_dirs(root: str) -> list[str]:
    """The cell directories under the init's cgroup ``root``."""
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if os.path.isdir(root) else []


@pytest.mark.parametrize(
    "command",
    [
        "setsid sleep {m} &",  # the shell exits at once; the sleeper is in a session of its own
        "(setsid sh -c 'sleep {m} & exit 0' &); exit 0",  # double fork: re-parented, own session, parent gone
    ],
    ids=["setsid", "double-fork"],
)
def test_a_stop_kills_descendants_that_left_the_process_group(
    cell_mode: str, command: str, sleepers: list[str]
) -> None:
    marker = unique()
    sleepers.append(marker)
    cltab = f"g:esc:run:once:{command.format(m=marker)}\ng:plain:run:respawn:sleep 300\n"

    async def scenario() -> None:
        async with running_init(cltab, cgroup=cell_mode) as (init, _):
            assert init.containment == ("cgroup" if cell_mode == "auto" else "environment marker")
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(pids_with(marker, "sleep")) == 1, what="the escaped sleeper to start")
            [sleeper] = pids_with(marker, "sleep")
            entry = init.status()["g"]["entries"]["esc"]
            await wait_until(lambda: not pid_alive(entry["pid"]), what="the entry's shell to exit")
            # the escape is real: the sleeper is out of the entry's process group and session
            assert os.getsid(sleeper) not in (entry["pid"], os.getsid(0))
            assert os.getpgid(sleeper) != entry["pid"]
            assert group_members(entry["pid"]) == []
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert not pid_alive(sleeper)
            assert init.status()["g"]["entries"]["esc"]["state"] == "stopped"
            assert zombie_children() == []
            if cell_mode == "auto":
                root = init._cells.root  # type: ignore[union-attr]
                assert own_cgroup_dirs(root) == []  # each child's cgroup is removed once it is empty
        if cell_mode == "auto":
            assert not os.path.exists(root)  # and the init's own at shutdown

    run(scenario())


def test_a_respawned_entry_stops_what_its_earlier_runs_left_behind(
    cell_mode: str, sleepers: list[str], tmp_path: Path
) -> None:
    marker = unique()
    sleepers.append(marker)
    runs = tmp_path / "runs"
    # each run leaves a sleeper in its own session and exits; the third run stays
    cltab = f"g:r:run:respawn:setsid sleep {marker} & echo >> {runs}; [ $(wc -l < {runs}) -ge 3 ] && exec sleep 300\n"

    async def scenario() -> None:
        async with running_init(cltab, cgroup=cell_mode) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(pids_with(marker, "sleep")) >= 3, what="three runs' sleepers")
            escaped = pids_with(marker, "sleep")
            assert init.status()["g"]["entries"]["r"]["restarts"] >= 2
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert not any(pid_alive(p) for p in escaped)

    run(scenario())


def test_the_stop_sends_sigterm_before_sigkill(tmp_path: Path) -> None:
    """SIGINT is ignored, SIGTERM makes the command write a file and exit 0: the file proves SIGTERM came,
    and before SIGKILL (which nothing survives to write anything)."""
    marker = tmp_path / "got-term"
    ready = tmp_path / "ready"
    cltab = f"g:t:run:once:trap '' INT; trap 'echo term > {marker}; exit 0' TERM; touch {ready}; sleep 300 & wait\n"

    async def scenario() -> None:
        # SIGKILL only 5 s after SIGTERM: with the trap working, the entry is long gone by then
        async with running_init(cltab, stop_grace=[0, 0.2, 5]) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            pid = init.status()["g"]["entries"]["t"]["pid"]
            await wait_until(lambda: ready.exists() and len(group_members(pid)) == 2, what="the traps and sleep")
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert marker.read_text() == "term\n"
            assert init.status()["g"]["entries"]["t"]["exit"] == 0  # it exited through its TERM trap, not killed

    run(scenario())


def test_a_child_that_cannot_enter_its_cgroup_runs_nothing(tmp_path: Path) -> None:
    require_cgroup2()
    ran = tmp_path / "ran"

    async def scenario() -> None:
        async with running_init(f"g:x:run:wait:touch {ran}\n") as (init, records):
            cells = init._cells
            assert isinstance(cells, CgroupCells)
            make = cells.new

            def broken(label: str) -> object:
                cell = make(label)
                os.rmdir(cell.path)  # type: ignore[attr-defined]  # the move must now fail
                return cell

            cells.new = broken  # type: ignore[method-assign,assignment]
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == "FAILED"
            assert init.status()["g"]["entries"]["x"]["exit"] == EXIT_NO_CGROUP
            assert not ran.exists()
            await wait_until(lambda: records.has("cgroup.procs"), what="the shell's message naming the cgroup")

    run(scenario())


def test_enter_cgroup_keeps_the_command_and_wraps_other_programs() -> None:
    shell = enter_cgroup(["/bin/sh", "-c", "echo 'a b'; exit 3"], "/cg/x y/cgroup.procs")
    assert shell[:2] == ["/bin/sh", "-c"] and len(shell) == 3
    assert shell[2] == "echo $$ >'/cg/x y/cgroup.procs' || exit 126; echo 'a b'; exit 3"
    other = enter_cgroup(["/usr/bin/python3", "-m", "x", "a b"], "/cg/p")
    assert other == [
        "/bin/sh",
        "-c",
        'echo $$ >/cg/p || exit 126; exec "$@"',
        "sh",
        "/usr/bin/python3",
        "-m",
        "x",
        "a b",
    ]


def test_agent_children_run_in_their_cgroup_too(tmp_path: Path) -> None:
    require_cgroup2()
    res = tmp_path / "res"

    async def scenario() -> None:
        async with running_init(f"g:r:run:respawn:@file {res}\n") as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(res.exists, what="the resource to be acquired")
            pid = init.status()["g"]["entries"]["r"]["pid"]
            cgroup = Path(f"/proc/{pid}/cgroup").read_text().splitlines()[-1]
            assert os.path.basename(init._cells.root) in cgroup  # type: ignore[union-attr]
            assert Path(f"/proc/{pid}/comm").read_text().strip() != "sh"  # the wrapper exec'd the agent
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert not res.exists()

    run(scenario())


def test_an_init_removes_empty_cgroup_trees_that_dead_inits_left_behind() -> None:
    require_cgroup2()
    parent, _ = cgroup2_parent()
    assert parent is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = os.path.join(parent, f"omha-{dead.pid}-0abc12")
    os.makedirs(os.path.join(stale, "1.g.a"))
    try:

        async def scenario() -> None:
            async with running_init("g:a:run:once:true\n") as (init, records):
                assert not os.path.exists(stale)
                assert records.has(f"removed {stale}")
                assert os.path.isdir(init._cells.root)  # type: ignore[union-attr]  # its own stays

        run(scenario())
    finally:
        for path in (os.path.join(stale, "1.g.a"), stale):
            if os.path.isdir(path):
                os.rmdir(path)


def test_the_cgroup_option_is_checked_in_omha_toml_and_in_the_init() -> None:
    assert validate_config({"init": {"cgroup": "off"}}).section("init")["cgroup"] == "off"
    assert validate_config({}).section("init")["cgroup"] == "auto"
    with pytest.raises(ConfigError, match="cgroup"):
        validate_config({"init": {"cgroup": "yes"}})
    with pytest.raises(ConfigError, match=r"\[init\] cgroup: expected one of 'auto', 'off'"):
        InitOptions.from_mapping({"cgroup": "yes"})


def test_closing_the_cells_kills_what_is_left_and_removes_the_cgroups(cell_mode: str, sleepers: list[str]) -> None:
    """What shutdown does last (and the guard when the daemon dies): nothing the init started outlives it."""
    marker = unique()
    sleepers.append(marker)
    logger = logging.getLogger("omha.test.cells")
    cells = open_cells(cell_mode, logger)
    cell = cells.new("g/t")
    argv, env = cell.prepare(["/bin/sh", "-c", f"setsid sleep {marker} & exec sleep {marker}"], dict(os.environ))
    proc = subprocess.Popen(argv, env=env)
    try:
        cell.attach(proc.pid)
        deadline = time.monotonic() + 15
        while len(pids_with(marker, "sleep")) < 2:
            assert time.monotonic() < deadline, "the two sleepers did not start"
            time.sleep(0.01)
        assert cells.leftovers() >= set(pids_with(marker, "sleep"))
        cells.close()
        assert proc.wait(15) == -signal.SIGKILL
        deadline = time.monotonic() + 15
        while pids_with(marker, "sleep"):
            assert time.monotonic() < deadline, "a sleeper outlived close()"
            time.sleep(0.01)
        if isinstance(cells, CgroupCells):
            assert not os.path.exists(cells.root)
    finally:
        cells.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
