"""Cluster::Init behaviours of the local init: cleanup entries at level ``stop``, tests one after another with a
timeout, ``wait_failure``, and entries leaving a level signalled together."""

from __future__ import annotations

from pathlib import Path

import pytest

from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.init import DONE, FAILED, PASSED, STOPPING, InitOptions
from tests.core.init_helpers import events, pid_alive, probe, run, running_init, wait_until


def test_stop_entries_run_in_order_after_everything_stopped_while_the_group_is_stopping(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    gate = tmp_path / "gate"
    cltab = (
        f"g:srv:run:respawn:{probe('srv', log)}\n"
        f"g:c1:stop:wait:echo c1-$OMHA_LEVEL >> {log}; while [ ! -e {gate} ]; do sleep 0.02; done\n"
        f"g:c2:stop:once:echo c2 >> {log}\n"
        f"g:c3:stop,:test:echo c3 >> {log}\n"
        "g:never:stop:off:\n"
    )

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: events(log) == ["start:srv"], what="srv")
            assert init.status()["g"]["entries"]["c1"]["state"] == "stopped"  # not run at other levels
            init.tell("g", "stop")
            await wait_until(lambda: "c1-stop" in events(log), what="the first cleanup entry")
            # the group still counts as holding its resources until the cleanup is done (it keeps its claim)
            assert init.state("g") == STOPPING
            assert init.status()["g"]["entries"]["c2"]["state"] == "stopped"  # c1 runs to completion first
            gate.touch()
            assert await init.wait_settled("g", 15) == DONE
            assert events(log) == ["start:srv", "stop:srv", "c1-stop", "c2", "c3"]
            entries = init.status()["g"]["entries"]
            assert [entries[t]["state"] for t in ("srv", "c1", "c2", "c3", "never")] == [
                "stopped",
                "done",
                "exited",
                "passed",
                "off",
            ]
            # told stop again: it did not run anywhere in between, so there is nothing to clean up
            init.tell("g", "stop")
            assert await init.wait_settled("g", 15) == DONE
            assert events(log).count("c2") == 1
            # run again: the cleanup results are forgotten, and the next stop cleans up again
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            init.tell("g", "stop")
            assert await init.wait_settled("g", 15) == DONE
            assert events(log).count("c2") == 2

    run(scenario())


def test_stop_entries_run_at_shutdown_but_not_for_a_group_never_run_here_or_held_elsewhere(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = "".join(f"{g}:{g}srv:run:respawn:sleep 300\n{g}:{g}clean:stop:wait:echo {g} >> {log}\n" for g in "abcd")

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            init.tell("a", "stop")  # never ran here
            init.tell("b", "run")
            init.tell("c", "run")
            for g in "abc":
                await init.wait_settled(g, 15)
            init.tell("c", "stop", cleanup=False)  # the daemon: another node holds c
            assert await init.wait_settled("c", 15) == DONE
            assert events(log) == []
            assert init.status()["c"]["entries"]["cclean"]["state"] == "stopped"
            await init.shutdown()
            assert events(log) == ["b"]

    run(scenario())


def test_a_stop_entry_past_stop_timeout_is_stopped_and_fails_the_group(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    cltab = f"g:srv:run:once:true\ng:hang:stop:wait:sleep 300\ng:after:stop:wait:echo after >> {log}\n"

    async def scenario() -> None:
        for wait_failure, final in (("fail", FAILED), ("continue", DONE)):
            async with running_init(cltab, stop_timeout=0.3, wait_failure=wait_failure) as (init, records):
                init.tell("g", "run")
                await init.wait_settled("g", 15)
                init.tell("g", "stop")
                assert await init.wait_settled("g", 15) == final
                entries = init.status()["g"]["entries"]
                assert entries["hang"]["state"] == "failed" and entries["hang"]["pid"] is None
                assert records.has("g/hang: wait entry still running after stop_timeout")
        # the later cleanup entries ran in both cases
        assert events(log) == ["after", "after"]

    run(scenario())


def test_tests_run_one_after_another_in_file_order_each_within_test_timeout(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    flag = tmp_path / "flag"
    cltab = (
        f"g:t1:test:test:echo t1-start >> {log}; sleep 0.2; touch {flag}; echo t1-end >> {log}\n"
        f"g:t2:test:test:echo t2 >> {log}; test -e {flag}\n"  # relies on t1 having finished
        f"g:hang:test:test:echo hang >> {log}; sleep 300\n"
        f"g:t3:test:test:echo t3 >> {log}\n"
    )

    async def scenario() -> None:
        async with running_init(cltab, test_timeout=0.5) as (init, records):
            init.tell("g", "test")
            assert await init.wait_settled("g", 15) == FAILED
            assert events(log) == ["t1-start", "t1-end", "t2", "hang", "t3"]
            entries = init.status()["g"]["entries"]
            assert [entries[t]["state"] for t in ("t1", "t2", "hang", "t3")] == ["passed", "passed", "failed", "passed"]
            assert records.has("g/hang: test entry still running after test_timeout (0.5s)")
        # without the hanging test the level passes
        async with running_init(cltab.replace("sleep 300", "true"), test_timeout=5) as (init, _):
            init.tell("g", "test")
            assert await init.wait_settled("g", 15) == PASSED

    run(scenario())


def test_wait_failure_continue_goes_on_with_the_next_entry(tmp_path: Path) -> None:
    marker = tmp_path / "after"
    cltab = f"g:w:run:wait:exit 1\ng:after:run:once:touch {marker}\n"

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):  # default: fail
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == FAILED
            assert not marker.exists()
        for how in ({"wait_failure": "continue"}, {}):
            text = cltab if how else ":::wait_failure:continue\n" + cltab  # the option, or the cltab's own line
            async with running_init(text, **how) as (init, records):
                init.tell("g", "run")
                assert await init.wait_settled("g", 15) == DONE
                await wait_until(marker.exists, what="the entry after the failed wait")
                assert init.status()["g"]["entries"]["w"]["state"] == "failed"
                assert records.has("going on with the next entry (wait_failure = continue)")
            marker.unlink()

    run(scenario())


def test_entries_leaving_a_level_are_signalled_together(tmp_path: Path) -> None:
    """Twelve entries that ignore SIGINT and SIGTERM: every one gets SIGINT before any gets SIGTERM, and all are
    gone after one SIGKILL round (one after the other, they would take 12 stop_grace ladders)."""
    log = str(tmp_path / "log")
    n = 12
    stubborn = (
        "trap 'echo int:{i} >> {log}' INT; trap 'echo term:{i} >> {log}' TERM; echo ready >> {log}; "
        "while :; do sleep 0.05; done"
    )
    cltab = "".join(f"g:e{i}:run:respawn:{stubborn.format(i=i, log=log)}\n" for i in range(n))

    async def scenario() -> None:
        async with running_init(cltab, stop_grace=[0, 0.5, 0.5]) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: events(log).count("ready") == n, what="every entry trapping signals")
            pids = [e["pid"] for e in init.status()["g"]["entries"].values()]
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            signals = [e.split(":")[0] for e in events(log) if e != "ready"]
            assert sorted(e for e in events(log) if e.startswith("int:")) == sorted(f"int:{i}" for i in range(n))
            assert signals == ["int"] * n + ["term"] * n
            assert not any(pid_alive(p) for p in pids)

    run(scenario())


def test_the_new_init_options_are_checked() -> None:
    assert InitOptions.from_mapping({}).wait_failure == "fail"
    opts = InitOptions.from_mapping({"wait_failure": "continue", "test_timeout": 5, "stop_timeout": 2.5})
    assert (opts.wait_failure, opts.test_timeout, opts.stop_timeout) == ("continue", 5.0, 2.5)
    for key, value in (("wait_failure", "maybe"), ("test_timeout", 0), ("stop_timeout", -1)):
        with pytest.raises(ConfigError, match=rf"\[init\] {key}: "):
            InitOptions.from_mapping({key: value})
    config = validate_config({"node": "n1", "init": {"wait_failure": "continue"}})
    assert config.section("init")["wait_failure"] == "continue"
    with pytest.raises(ConfigError, match="wait_failure"):
        validate_config({"node": "n1", "init": {"wait_failure": "sometimes"}})
