"""Run modes: once is never restarted, respawn is, with the "respawning too rapidly" throttle; off never runs."""

from __future__ import annotations

from pathlib import Path

from omha_core.init import DONE
from tests.core.init_helpers import events, run, running_init, wait_until


def test_once_runs_in_the_background_and_is_never_restarted(tmp_path: Path) -> None:
    once, clock = str(tmp_path / "once"), str(tmp_path / "clock")
    cltab = f"g:o:run:once:echo ran >> {once}; exit 4\ng:clock:run:respawn:echo tick >> {clock}; sleep 0.05\n"

    async def scenario() -> None:
        async with running_init(cltab, respawn_limit=1000) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: init.status()["g"]["entries"]["o"]["state"] == "exited", what="once to exit")
            # the respawn entry beside it restarts several times meanwhile: time enough for a wrong restart
            await wait_until(lambda: len(events(clock)) >= 5, what="five ticks")
            entry = init.status()["g"]["entries"]["o"]
            assert events(once) == ["ran"]
            assert entry == {**entry, "state": "exited", "exit": 4, "restarts": 0, "pid": None}

    run(scenario())


def test_respawn_restarts_an_entry_that_exits(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = f"g:r:run:respawn:echo $$ >> {log}; sleep 0.05; exit 2\n"

    async def scenario() -> None:
        async with running_init(cltab, respawn_limit=1000) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(log)) >= 4, what="three restarts")
            entry = init.status()["g"]["entries"]["r"]
            assert entry["restarts"] >= 3 and entry["exit"] == 2
            assert len(set(events(log))) == len(events(log))  # a new process each time

    run(scenario())


def test_respawning_too_rapidly_pauses_then_resumes(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = f"g:r:run:respawn:echo x >> {log}; exit 1\n"

    async def scenario() -> None:
        async with running_init(cltab, respawn_limit=2, respawn_window=30, respawn_pause=0.5) as (init, records):
            init.tell("g", "run")
            await wait_until(lambda: records.has("respawning too rapidly"), what="the throttle")
            entry = init.status()["g"]["entries"]["r"]
            # started once and restarted respawn_limit times; the next quick exit is paused
            assert entry == {**entry, "state": "throttled", "restarts": 2, "pid": None}
            assert len(events(log)) == 3
            assert any("g/r: respawning too rapidly" in m for m in records.messages)
            await wait_until(lambda: len(events(log)) >= 4, what="the entry to resume after the pause")
            assert init.status()["g"]["entries"]["r"]["restarts"] >= 3

    run(scenario())


def test_an_entry_that_lives_longer_than_the_window_is_not_throttled(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = f"g:r:run:respawn:echo x >> {log}; sleep 0.15; exit 1\n"

    async def scenario() -> None:
        async with running_init(cltab, respawn_limit=1, respawn_window=0.05, respawn_pause=60) as (init, records):
            init.tell("g", "run")
            await wait_until(lambda: len(events(log)) >= 5, what="four restarts")
            assert not records.has("respawning too rapidly")

    run(scenario())


def test_off_never_runs(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    cltab = f"g:o:run:off:touch {flag}\ng:w:run:wait:true\ng:empty:run:off:\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            entries = init.status()["g"]["entries"]
            assert entries["o"]["state"] == "off" and entries["empty"]["state"] == "off"
            assert entries["w"]["state"] == "done"
            assert not flag.exists()

    run(scenario())
