"""``@ocf`` actions against real scripts: ClusterLabs' ``ocf:heartbeat:Dummy`` and the scratch ``test:Probe``.

What the OCF resource-agent API asks of the caller, each pinned here: parameters as ``OCF_RESKEY_<key>`` in an
environment built from scratch, the action's timeout (killed at it), exit codes 0 / 7 / 8 / 9 / errors read as
the spec says, ``meta-data`` defaults and overrides of the timeouts and the monitor interval.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from ocf_support import Respawn, run_agent

pytestmark = pytest.mark.usefixtures("heartbeat_agents")


def test_dummy_start_monitor_stop(tmp_path: Path) -> None:
    state = tmp_path / "dummy.state"
    args = f"heartbeat:Dummy state={state}"
    assert run_agent("ocf", "check", args).returncode == 0  # validate-all: the state directory is writable
    done = run_agent("ocf", "acquire", args)
    assert done.returncode == 0, done.stderr
    assert state.exists()
    assert run_agent("ocf", "acquire", args).returncode == 0  # start is idempotent
    done = run_agent("ocf", "release", args)
    assert done.returncode == 0, done.stderr
    assert not state.exists()
    assert run_agent("ocf", "release", args).returncode == 0  # so is stop


def test_dummy_respawn_restarts_when_the_resource_vanishes(tmp_path: Path, respawn: Callable[..., Respawn]) -> None:
    state = tmp_path / "dummy.state"
    r = respawn("ocf", f"heartbeat:Dummy state={state} op.monitor.interval=0.2s")
    r.wait_acquired()
    assert state.exists()
    assert r.proc.poll() is None  # monitoring
    state.unlink()  # the resource stops behind omha's back: monitor says 7, not running
    assert r.proc.wait(20) == 3, "a lost resource must exit 3 so that the init re-acquires it"
    assert "not running" in r.proc.communicate()[1]


def test_dummy_respawn_releases_on_sigterm(tmp_path: Path, respawn: Callable[..., Respawn]) -> None:
    state = tmp_path / "dummy.state"
    r = respawn("ocf", f"heartbeat:Dummy state={state} op.monitor.interval=0.2s")
    r.wait_acquired()
    assert state.exists()
    rc, err = r.stop()
    assert rc == 0, err
    assert not state.exists()


def test_parameters_and_environment(ocf_root: tuple[Path, Path, Path]) -> None:
    _, config, state = ocf_root
    done = run_agent(
        "ocf",
        "acquire",
        f"test:Probe state={state} color=green",
        config,
        OMHA_GROUP="web",
        OMHA_TAG="probe",
        OMHA_NODE="n7",
        SITE_PASSWORD="hunter2",
        OMHA_CELL="tok.3",
    )
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in (state / "start.env").read_text().splitlines() if "=" in line)
    assert env["OCF_RESKEY_state"] == str(state) and env["OCF_RESKEY_color"] == "green"
    assert env["OCF_ROOT"] == str(ocf_root[0])
    assert env["OCF_RESOURCE_INSTANCE"] == "web-probe"
    assert (env["OCF_RESOURCE_TYPE"], env["OCF_RESOURCE_PROVIDER"]) == ("Probe", "test")
    assert env["OCF_RESKEY_CRM_meta_timeout"] == "7000"  # the agent's advised start timeout, in ms
    assert env["OCF_RESKEY_CRM_meta_on_node"] == "n7"
    assert env["OMHA_CELL"] == "tok.3"  # the init's marker: what the script leaves behind is found and stopped
    assert "SITE_PASSWORD" not in env and "hunter2" not in (state / "start.env").read_text()
    assert (state / "calls").read_text().split() == ["start", "monitor"]  # a probe after the start


def test_timeout_kills_the_action_and_everything_it_started(ocf_root: tuple[Path, Path, Path]) -> None:
    _, config, state = ocf_root
    nap = f"300.{os.getpid()}"  # a duration no other test sleeps
    (state / "start.sleep").write_text(nap)
    began = time.monotonic()
    done = run_agent("ocf", "acquire", f"test:Probe state={state} op.start.timeout=1s", config)
    assert done.returncode == 1
    assert "timed out after 1 s (killed)" in done.stderr
    assert time.monotonic() - began < 60
    sleepers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read() == f"sleep\x00{nap}\x00".encode():
                    sleepers.append(pid)
        except OSError:
            continue
    assert not sleepers, "the timed-out action's sleep survived"


@pytest.mark.parametrize(("rc", "healthy"), [(0, True), (8, True), (7, False), (9, False), (1, False), (5, False)])
def test_monitor_exit_codes(ocf_root: tuple[Path, Path, Path], rc: int, healthy: bool) -> None:
    from omha_resource_ocf.ocf import OcfAgent

    root, _, state = ocf_root
    agent = OcfAgent.from_command(f"test:Probe state={state}", {"ocf_root": str(root)})
    agent.validate()
    agent.acquire()
    (state / "monitor.rc").write_text(str(rc))
    assert agent.monitor() is healthy
    calls = (state / "calls").read_text().split()
    # a failed resource (not merely stopped) is stopped before it is started again, as Pacemaker recovers it
    assert (calls[-1] == "stop") is (rc not in (0, 7, 8))


def test_start_failure_and_stop_failure_are_reported(ocf_root: tuple[Path, Path, Path]) -> None:
    _, config, state = ocf_root
    (state / "start.rc").write_text("5")
    done = run_agent("ocf", "acquire", f"test:Probe state={state}", config)
    assert done.returncode == 1 and "exit 5 (not installed)" in done.stderr
    (state / "stop.rc").write_text("1")
    done = run_agent("ocf", "release", f"test:Probe state={state}", config)
    assert done.returncode == 1 and "stop: exit 1 (error)" in done.stderr
    (state / "stop.rc").write_text("7")  # not running: the resource is down, whatever the agent thinks of it
    assert run_agent("ocf", "release", f"test:Probe state={state}", config).returncode == 0


def test_start_that_lies_is_caught_by_the_probe(ocf_root: tuple[Path, Path, Path]) -> None:
    _, config, state = ocf_root
    (state / "monitor.rc").write_text("7")
    done = run_agent("ocf", "acquire", f"test:Probe state={state}", config)
    assert done.returncode == 1 and "start reported success, but monitor says exit 7 (not running)" in done.stderr


def test_monitor_interval_from_metadata_and_override(ocf_root: tuple[Path, Path, Path]) -> None:
    from omha_resource_ocf.ocf import OcfAgent

    root, _, state = ocf_root
    agent = OcfAgent.from_command(f"test:Probe state={state}", {"ocf_root": str(root)})
    agent.validate()
    assert agent.monitor_interval == 3.0 and agent.timeout("stop") == 9.0
    agent = OcfAgent.from_command(
        f"test:Probe state={state} op.monitor.interval=500ms op.stop.timeout=1min", {"ocf_root": str(root)}
    )
    agent.validate()
    assert agent.monitor_interval == 0.5 and agent.timeout("stop") == 60.0
