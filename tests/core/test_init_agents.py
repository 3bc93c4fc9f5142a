"""Resource-agent entries (``@file``): acquire, release when leaving the level, re-acquire under respawn, check."""

from __future__ import annotations

from pathlib import Path

from omha_core.init import DONE, FAILED, PASSED
from tests.core.init_helpers import run, running_init, wait_until


def test_wait_and_once_agents_acquire_and_release(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    cltab = f"g:first:run:wait:@file {first} content=one\ng:second:run,other:once:@file {second}\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, records):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            assert first.read_text() == "one"  # acquired before the next entry started
            await wait_until(second.exists, what="the once agent to acquire")
            entries = init.status()["g"]["entries"]
            assert entries["first"]["state"] == "done" and entries["first"]["exit"] == 0
            init.tell("g", "other")
            assert await init.wait_settled("g", 30) == DONE
            assert not first.exists()  # leaving the level released it...
            assert second.exists()  # ...but not the one that also runs at the new level
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not second.exists()
            assert records.has("g/first: released")

    run(scenario())


def test_respawn_agent_reacquires_a_lost_resource_and_releases_on_stop(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cltab = f"g:res:run:respawn:@file {marker}\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, records):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until(marker.exists, what="the resource to be acquired")
            marker.unlink()  # lost behind omha's back
            await wait_until(lambda: init.status()["g"]["entries"]["res"]["restarts"] >= 1, what="a restart")
            await wait_until(marker.exists, what="the resource to be re-acquired")
            assert records.has("resource lost")
            assert init.status()["g"]["entries"]["res"]["exit"] == 3
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not marker.exists()  # the monitor released it on SIGTERM

    run(scenario())


def test_test_agents_pass_and_fail(tmp_path: Path) -> None:
    cltab = f"ok:fit:test:test:@file {tmp_path}/m\nko:unfit:test:test:@file {tmp_path}/missing/m\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, records):
            init.tell("ok", "test")
            init.tell("ko", "test")
            assert await init.wait_settled("ok", 30) == PASSED
            assert await init.wait_settled("ko", 30) == FAILED
            assert records.has("does not exist on this node")
            assert not (tmp_path / "m").exists()  # a check acquires nothing

    run(scenario())


def test_a_failed_release_fails_the_group(tmp_path: Path) -> None:
    held = tmp_path / "held"
    cltab = f"g:res:run:once:@file {held}/marker\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, records):
            held.mkdir()
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until((held / "marker").exists, what="the resource to be acquired")
            (held / "marker").unlink()
            (held / "marker").mkdir()  # unlink() of a directory fails: release cannot succeed
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("g/res: release failed")

    run(scenario())


def test_agents_get_the_config_path(tmp_path: Path) -> None:
    config = tmp_path / "omha.toml"
    config.write_text("[agents.file]\n")
    marker = tmp_path / "marker"
    cltab = f"g:res:run:wait:@file {marker}\n"

    async def scenario() -> None:
        async with running_init(cltab, config_path=str(config)) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            assert marker.exists()
            config.write_text("[agents.file]\nnot toml at all = = =\n")
            init.tell("g", "stop")
            # the release child reads OMHA_CONFIG, finds it broken and fails: proof that it was passed on
            assert await init.wait_settled("g", 30) == FAILED
            assert marker.exists()

    run(scenario())


def test_an_agent_that_takes_too_long_is_killed_and_fails_the_group(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cltab = f"g:slow:run:wait:@file {marker}\ng:after:run:once:touch {tmp_path}/after\n"

    async def scenario() -> None:
        # a Python start-up alone takes longer than 10 ms
        async with running_init(cltab, agent_timeout=0.01) as (init, records):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("g/slow: acquire did not finish within agent_timeout (0.01s); killing it")
            entry = init.status()["g"]["entries"]["slow"]
            assert entry["state"] == "failed" and entry["exit"] is not None and entry["exit"] < 0
            assert not (tmp_path / "after").exists()

    run(scenario())
