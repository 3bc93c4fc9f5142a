"""Resource-agent entries (``@file``): acquire, release when leaving the level, re-acquire under respawn, check."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

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
        # a Python start-up alone takes longer than 10 ms (test_agent_host.py times out a forked action)
        async with running_init(cltab, agent_timeout=0.01, agent_host="off") as (init, records):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("g/slow: acquire did not finish within agent_timeout (0.01s); killing it")
            entry = init.status()["g"]["entries"]["slow"]
            assert entry["state"] == "failed" and entry["exit"] is not None and entry["exit"] < 0
            assert not (tmp_path / "after").exists()

    run(scenario())


def _throttled_after_a_first_acquire(tmp_path: Path) -> tuple[Path, Path, str, dict[str, Any]]:
    """A respawn ``@file`` entry whose agent reads ``omha.toml``: breaking that file makes every later run fail
    before it acquires, as an acquire that fails every time would. Returns config, marker, cltab, init options."""
    config, marker = tmp_path / "omha.toml", tmp_path / "marker"
    config.write_text("[agents.file]\n")
    # every exit counts as quick (60 s window); the second quick one in a row pauses the entry (for longer than
    # any test)
    options = {"config_path": str(config), "respawn_limit": 1, "respawn_window": 60, "respawn_pause": 600}
    return config, marker, f"g:res:run:respawn:@file {marker}\n", options


async def _pause_holding_the_resource(init: Any, config: Path, marker: Path) -> None:
    """Acquire, then kill the monitor (it dies without releasing) while re-acquiring cannot work: the entry is
    paused as respawning too rapidly, with the resource still held and no process left."""
    init.tell("g", "run")
    assert await init.wait_settled("g", 30) == DONE
    await wait_until(marker.exists, what="the resource to be acquired")
    config.write_text("[agents.file]\nnot toml at all = = =\n")
    os.kill(init.status()["g"]["entries"]["res"]["pid"], signal.SIGKILL)
    await wait_until(lambda: init.status()["g"]["entries"]["res"]["state"] == "throttled", what="the pause")
    entry = init.status()["g"]["entries"]["res"]
    assert entry["pid"] is None and entry["exit"] == 2
    assert marker.exists()


def test_a_paused_respawn_agent_is_released_when_its_group_stops(tmp_path: Path) -> None:
    config, marker, cltab, options = _throttled_after_a_first_acquire(tmp_path)

    async def scenario() -> None:
        async with running_init(cltab, **options) as (init, records):
            await _pause_holding_the_resource(init, config, marker)
            assert records.has("respawning too rapidly")
            config.write_text("[agents.file]\n")  # release can work again
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not marker.exists()  # released, with no monitor to do it
            assert records.has("g/res: released")
            assert init.status()["g"]["entries"]["res"]["state"] == "stopped"

    run(scenario())


def test_a_failed_release_of_a_paused_respawn_agent_fails_the_group(tmp_path: Path) -> None:
    config, marker, cltab, options = _throttled_after_a_first_acquire(tmp_path)

    async def scenario() -> None:
        async with running_init(cltab, **options) as (init, records):
            await _pause_holding_the_resource(init, config, marker)
            init.tell("g", "stop")  # the release cannot read its configuration either
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("g/res: release failed")
            assert marker.exists()
            config.write_text("[agents.file]\n")

    run(scenario())


def test_a_respawn_agent_that_never_got_to_acquire_is_not_released(tmp_path: Path) -> None:
    """An unknown agent exits 2 before acquiring anything: stopping it runs no release (which would fail too)."""
    cltab = "g:res:run:respawn:@no_such_agent_here x\n"

    async def scenario() -> None:
        async with running_init(cltab, respawn_limit=1, respawn_window=60, respawn_pause=600) as (init, records):
            init.tell("g", "run")
            await wait_until(lambda: init.status()["g"]["entries"]["res"]["state"] == "throttled", what="the pause")
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not records.has("release")

    run(scenario())


def test_a_monitor_that_did_not_release_is_followed_by_a_release(tmp_path: Path) -> None:
    """A monitor that cannot release when stopped (the marker became a directory) exits non-zero; the stop then
    runs ``release`` itself, and the group's state is that release's outcome."""
    _, marker, cltab, options = _throttled_after_a_first_acquire(tmp_path)

    async def scenario() -> None:
        async with running_init(cltab, **options) as (init, records):
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until(marker.exists, what="the resource to be acquired")
            marker.unlink()
            marker.mkdir()  # the monitor sees it still there; its release (unlink) fails
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("the monitor did not release its resource (status 1); running release")
            assert records.has("g/res: release failed")
            marker.rmdir()
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until(marker.exists, what="the resource to be acquired again")
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not marker.exists()

    run(scenario())
