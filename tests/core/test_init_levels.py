"""tell(group, level): what stops, what is kept, what starts and in which order; the group's final state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from omha_core.cltab import parse_cltab
from omha_core.init import CONFIGURED, DONE, FAILED, PASSED, STARTING, STOPPING, LocalInit
from tests.core.init_helpers import events, group_members, pid_alive, probe, run, running_init, wait_until


def test_tell_stops_keeps_matching_and_starts_the_rest(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = "".join(
        f"g:{tag}:{levels}:respawn:{probe(tag, log)}\n"
        for tag, levels in (("a", "1"), ("b", "12"), ("c", "1"), ("d", "2"), ("e", "2"))
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "1")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(log)) == 3, what="a, b, c started")
            assert sorted(events(log)) == ["start:a", "start:b", "start:c"]
            entries = init.status()["g"]["entries"]
            b_pid = entries["b"]["pid"]
            assert [entries[t]["state"] for t in "abcde"] == ["running"] * 3 + ["stopped"] * 2

            init.tell("g", "2")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(log)) == 7, what="d and e started")
            moved = events(log)[3:]
            # stopped together (see test_init_stop_together.py), before anything starts
            assert sorted(moved[:2]) == ["stop:a", "stop:c"]
            assert sorted(moved[2:]) == ["start:d", "start:e"]
            entries = init.status()["g"]["entries"]
            # b runs at 1 and at 2: the same process, never stopped
            assert entries["b"]["pid"] == b_pid and pid_alive(b_pid)
            assert "stop:b" not in events(log)
            assert [entries[t]["state"] for t in "abcde"] == ["stopped", "running", "stopped", "running", "running"]

    run(scenario())


def test_a_wait_entry_finishes_before_the_next_starts(tmp_path: Path) -> None:
    log = tmp_path / "log"
    gate = tmp_path / "gate"
    cltab = (
        f"g:w:run:wait:echo w-start >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done; echo w-done >> {log}\n"
        f"g:n:run:once:echo n-start >> {log}\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            await wait_until(lambda: events(str(log)) == ["w-start"], what="the wait entry to start")
            # the wait entry holds the group in STARTING and the next entry back
            assert init.state("g") == STARTING
            assert init.status()["g"]["entries"]["n"]["state"] == "stopped"
            gate.touch()
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(str(log))) == 3, what="n to run")
            assert events(str(log)) == ["w-start", "w-done", "n-start"]
            assert init.status()["g"]["entries"]["w"]["state"] == "done"

    run(scenario())


def test_passed_failed_and_done(tmp_path: Path) -> None:
    log = tmp_path / "after"
    cltab = (
        "good:t1:test:test:exit 0\n"
        "good:t2:test:test:true\n"
        "good:srv:run:respawn:sleep 300\n"
        "bad:u1:test:test:exit 0\n"
        "bad:u2:test:test:exit 3\n"
        "halt:w:run:wait:exit 1\n"
        f"halt:after:run:once:touch {log}\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            for group, level in (("good", "test"), ("bad", "test"), ("halt", "run")):
                init.tell(group, level)
            assert await init.wait_settled("good", 15) == PASSED
            assert await init.wait_settled("bad", 15) == FAILED
            assert await init.wait_settled("halt", 15) == FAILED
            status = init.status()
            assert status["bad"]["entries"]["u2"] == {**status["bad"]["entries"]["u2"], "state": "failed", "exit": 3}
            assert status["bad"]["entries"]["u1"]["state"] == "passed"
            # the entries after a failed wait entry are not started
            assert status["halt"]["entries"]["w"]["state"] == "failed"
            assert status["halt"]["entries"]["after"]["state"] == "stopped"
            assert not log.exists()
            # a level without test entries ends DONE
            init.tell("good", "run")
            assert await init.wait_settled("good", 15) == DONE

    run(scenario())


def test_a_level_without_entries_stops_everything(tmp_path: Path) -> None:
    cltab = "g:a:run:respawn:sleep 300\ng:b:run:once:sleep 300\ng:c:run:wait:true\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            pids = [e["pid"] for e in init.status()["g"]["entries"].values() if e["pid"]]
            assert len(pids) == 2
            init.tell("g", "stop")
            assert init.state("g") == STOPPING
            assert await init.wait_settled("g", 15) == DONE
            assert init.level("g") == "stop"
            assert {e["state"] for e in init.status()["g"]["entries"].values()} == {"stopped"}
            assert not any(pid_alive(p) for p in pids)

    run(scenario())


def test_runlevel_forms(tmp_path: Path) -> None:
    cltab = (
        "g:multi:long1,long2,5:respawn:sleep 300\n"
        "g:single:long3,:respawn:sleep 300\n"
        "g:named:start:respawn:sleep 300\n"
        "g:digits:12:respawn:sleep 300\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):

            async def at(level: str) -> dict[str, int | None]:
                init.tell("g", level)
                assert await init.wait_settled("g", 15) == DONE
                return {t: e["pid"] for t, e in init.status()["g"]["entries"].items()}

            pids = await at("long2")
            assert [t for t, p in pids.items() if p] == ["multi"]
            multi = pids["multi"]
            pids = await at("5")
            assert [t for t, p in pids.items() if p] == ["multi"] and pids["multi"] == multi
            pids = await at("long3")
            assert [t for t, p in pids.items() if p] == ["single"]
            pids = await at("l")  # an item list does not match single characters
            assert not any(pids.values())
            pids = await at("start")
            assert [t for t, p in pids.items() if p] == ["named"]
            pids = await at("1")
            digits = pids["digits"]
            assert [t for t, p in pids.items() if p] == ["digits"]
            pids = await at("2")
            assert pids["digits"] == digits

    run(scenario())


def test_a_new_tell_supersedes_a_running_transition(tmp_path: Path) -> None:
    after = tmp_path / "after"
    cltab = (
        f"g:keep:12:respawn:sleep 300\ng:slow:1:wait:sleep 300\ng:after:1:once:touch {after}\ng:two:2:once:sleep 300\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "1")
            await wait_until(
                lambda: init.status()["g"]["entries"]["slow"]["state"] == "running", what="the wait entry to run"
            )
            keep = init.status()["g"]["entries"]["keep"]["pid"]
            slow = init.status()["g"]["entries"]["slow"]["pid"]
            init.tell("g", "2")  # while level 1 still waits for `slow`
            assert await init.wait_settled("g", 15) == DONE
            entries = init.status()["g"]["entries"]
            assert entries["keep"]["pid"] == keep  # work already done that still matches is kept
            assert entries["slow"]["state"] == "stopped" and not pid_alive(slow)
            assert entries["two"]["state"] == "running"
            assert entries["after"]["state"] == "stopped" and not after.exists()

    run(scenario())


def test_telling_again_reruns_a_failed_wait_and_keeps_the_rest(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    cltab = f"g:srv:run:respawn:sleep 300\ng:w:run:wait:test -e {flag}\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == FAILED
            srv = init.status()["g"]["entries"]["srv"]["pid"]
            flag.touch()
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            assert init.status()["g"]["entries"]["srv"]["pid"] == srv
            assert init.status()["g"]["entries"]["w"]["state"] == "done"

    run(scenario())


def test_untold_groups_and_bad_calls() -> None:
    async def scenario() -> None:
        init = LocalInit(parse_cltab("g:a:1:once:true\n"))
        with pytest.raises(RuntimeError, match="start"):
            init.tell("g", "1")
        async with running_init("g:a:1:once:true\n") as (init, records):
            assert init.state("g") == CONFIGURED and init.level("g") is None
            assert await init.wait_settled("g") == CONFIGURED
            assert init.status() == {}
            with pytest.raises(ValueError, match="must be any characters but whitespace"):
                init.tell("g", "run level")
            init.tell("nosuch", "1")
            assert await init.wait_settled("nosuch", 15) == DONE
            assert records.has("group nosuch has no entries")
            init.tell("g", "1")
            with pytest.raises(TimeoutError):
                await init.wait_settled("g", 0)  # not settled in time: raises instead of returning a state
            await init.wait_settled("g", 15)
        with pytest.raises(RuntimeError, match="shut down"):
            init.tell("g", "1")

    run(scenario())


def test_transitions_run_concurrently_across_groups(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    cltab = f"slow:w1:run:wait:while [ ! -e {gate} ]; do sleep 0.02; done\nfast:w2:run:wait:true\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("slow", "run")
            init.tell("fast", "run")
            # one group's long wait entry does not hold another group back
            assert await init.wait_settled("fast", 15) == DONE
            assert init.state("slow") == STARTING
            gate.touch()
            assert await asyncio.wait_for(init.wait_settled("slow"), 15) == DONE

    run(scenario())


def test_telling_back_an_entry_that_is_being_stopped_restarts_it_after_the_stop() -> None:
    cltab = "g:slow:1:respawn:trap '' INT; sleep 300\n"  # only the SIGTERM step stops it (after 0.3 s)

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "1")
            assert await init.wait_settled("g", 15) == DONE
            old = init.status()["g"]["entries"]["slow"]["pid"]
            await wait_until(lambda: len(group_members(old)) == 2, what="the trap to be set")
            init.tell("g", "2")
            await wait_until(lambda: init.status()["g"]["entries"]["slow"]["state"] == "stopping", what="stopping")
            init.tell("g", "1")
            assert await init.wait_settled("g", 15) == DONE
            entry = init.status()["g"]["entries"]["slow"]
            assert entry["state"] == "running" and entry["pid"] != old
            assert group_members(old) == []

    run(scenario())
