"""Stopping: whole process groups, SIGINT -> SIGTERM -> SIGKILL, no zombies, shutdown in reverse order,
and children's output in the log rather than on a terminal."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from omha_core.init import DONE
from tests.core.init_helpers import (
    events,
    group_members,
    pid_alive,
    probe,
    run,
    running_init,
    wait_until,
    zombie_children,
)


def test_stop_reaches_grandchildren_and_escalates_to_sigterm(tmp_path: Path) -> None:
    # background jobs of a non-interactive shell ignore SIGINT: only the SIGTERM step stops them
    cltab = "g:tree:run:respawn:sleep 300 & sleep 300 & wait\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            pgid = init.status()["g"]["entries"]["tree"]["pid"]
            await wait_until(lambda: len(group_members(pgid)) == 3, what="sh and two sleeps")
            assert os.getpgid(pgid) == pgid and os.getsid(pgid) == pgid  # own session and process group
            members = group_members(pgid)
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert not any(pid_alive(p) for p in members)
            assert group_members(pgid) == []
            assert init.status()["g"]["entries"]["tree"]["exit"] == -signal.SIGINT
            assert zombie_children() == []

    run(scenario())


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    cltab = "g:stubborn:run:once:trap '' INT TERM; sleep 300\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            pid = init.status()["g"]["entries"]["stubborn"]["pid"]
            await wait_until(lambda: len(group_members(pid)) == 2, what="the trap to be set and sleep to start")
            init.tell("g", "down")
            assert await init.wait_settled("g", 15) == DONE
            assert not pid_alive(pid)
            assert init.status()["g"]["entries"]["stubborn"]["exit"] == -signal.SIGKILL
            assert zombie_children() == []

    run(scenario())


def test_children_get_default_signal_actions_even_if_the_daemon_ignores_sigint(tmp_path: Path) -> None:
    cltab = "g:s:run:once:sleep 300\n"

    async def scenario() -> None:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a daemon started with `&` from a script
        try:
            async with running_init(cltab, stop_grace=[0, 30, 30]) as (init, _):
                init.tell("g", "run")
                assert await init.wait_settled("g", 15) == DONE
                pid = init.status()["g"]["entries"]["s"]["pid"]
                # dash catches SIGINT, and its forked child too until it execs: a SIGINT sent before `sleep` runs
                # is lost (a race of the shell's, that only the SIGTERM step then covers)
                await wait_until(lambda: running_command(pid, "sleep"), what="sh to start sleep")
                init.tell("g", "down")
                # with SIGINT ignored the stop would wait 30 s for SIGTERM
                assert await init.wait_settled("g", 15) == DONE
                assert init.status()["g"]["entries"]["s"]["exit"] == -signal.SIGINT
        finally:
            signal.signal(signal.SIGINT, old)

    run(scenario())


def running_command(pgid: int, name: str) -> bool:
    """True when a process of group ``pgid`` has exec'd ``name``."""
    for pid in group_members(pgid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                return True
        except OSError:
            pass
    return False


def test_exited_children_are_reaped(tmp_path: Path) -> None:
    cltab = "g:a:run:once:exit 0\ng:b:run:once:sh -c 'sleep 0.01 &'; exit 1\ng:c:run:wait:true\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(
                lambda: all(e["state"] in ("exited", "done") for e in init.status()["g"]["entries"].values()),
                what="every entry to exit",
            )
            assert zombie_children() == []

    run(scenario())


def test_shutdown_stops_every_group_in_reverse_order(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = "".join(f"{g}:{g}1:run:respawn:{probe(g, log)}\n" for g in ("a", "b", "c"))

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            for g in ("b", "a", "c"):
                init.tell(g, "run")
            for g in ("a", "b", "c"):
                assert await init.wait_settled(g, 15) == DONE
            await wait_until(lambda: len(events(log)) == 3, what="three starts")
            pids = [init.status()[g]["entries"][f"{g}1"]["pid"] for g in ("a", "b", "c")]
            guard = init.guard_pid
            assert guard is not None and pid_alive(guard)
            await init.shutdown()
            assert events(log)[3:] == ["stop:c", "stop:b", "stop:a"]
            assert not any(pid_alive(p) for p in pids)
            assert not pid_alive(guard)  # the guard left too, without killing anything
            assert zombie_children() == []

    run(scenario())


def test_output_goes_to_the_log_tagged_with_group_and_tag(tmp_path: Path) -> None:
    cltab = (
        "web:srv:run:once:echo hello; echo oops >&2; printf 'no newline'; sleep 300\n"
        "web:env:run:once:echo $OMHA_GROUP $OMHA_TAG $OMHA_LEVEL\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, records):
            init.tell("web", "run")
            assert await init.wait_settled("web", 15) == DONE
            await wait_until(lambda: records.has("web/srv: oops"), what="stderr in the log")
            assert records.has("web/srv: hello")
            await wait_until(lambda: records.has("web/env: web env run"), what="the environment line")
            pid = init.status()["web"]["entries"]["srv"]["pid"]
            for fd in (1, 2):
                assert os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:")
            assert os.readlink(f"/proc/{pid}/fd/0") == "/dev/null"
            init.tell("web", "down")
            await init.wait_settled("web", 15)
            # a last line without a newline is logged when the pipe closes
            await wait_until(lambda: records.has("web/srv: no newline"), what="the unterminated line")

    run(scenario())


def test_many_entries_stop_concurrently_across_groups(tmp_path: Path) -> None:
    cltab = "".join(f"g{i}:e{i}:run:respawn:sleep 300\n" for i in range(20))

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            for i in range(20):
                init.tell(f"g{i}", "run")
            states = await asyncio.gather(*(init.wait_settled(f"g{i}", 15) for i in range(20)))
            assert set(states) == {DONE}
            pids = [init.status()[f"g{i}"]["entries"][f"e{i}"]["pid"] for i in range(20)]
            assert all(pid_alive(p) for p in pids)
        assert not any(pid_alive(p) for p in pids)
        assert zombie_children() == []

    run(scenario())
