"""Alert agents: Pacemaker's own sample agents run unchanged on omha's events; agents are bounded by their
timeout, see no secret of the daemon's environment, and never hold the caller up."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from omha_core.alerts import Alert, Alerts, format_timestamp
from omha_core.config import validate_config
from omha_core.errors import ConfigError

SAMPLES = Path("/usr/share/pacemaker/alerts")


def sample(tmp_path: Path, name: str = "alert_file.sh.sample") -> Path:
    """A copy of one of Pacemaker's sample alert agents, made executable, as its header tells admins to do."""
    if not (SAMPLES / name).exists():
        pytest.skip(f"needs {SAMPLES / name} (pacemaker-common; installed by 'make test' as root)")
    agent = tmp_path / name.removesuffix(".sample")
    shutil.copy(SAMPLES / name, agent)
    agent.chmod(0o755)
    return agent


def recorder(tmp_path: Path, body: str = "") -> Path:
    """An alert agent that appends its whole environment (one NUL-free line per variable) to $CRM_alert_recipient."""
    agent = tmp_path / "record.sh"
    agent.write_text(f'#!/bin/sh\n{body}\n{{ env; echo ---; }} >> "$CRM_alert_recipient"\n')
    agent.chmod(0o755)
    return agent


def alert(
    path: Path, recipient: Path | str, timeout: float = 10.0, select: tuple[str, ...] = ("node", "fencing", "resource")
) -> Alert:
    return Alert(str(path), (str(recipient),), timeout, frozenset(select), "%H:%M:%S.%06N")


def records(path: Path) -> list[dict[str, str]]:
    out = []
    for block in path.read_text().split("---\n"):
        env = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if env:
            out.append(env)
    return out


def test_pacemakers_alert_file_sample_logs_every_kind(tmp_path: Path) -> None:
    log = tmp_path / "alerts.log"
    alerts = Alerts([alert(sample(tmp_path), log)], "n2")
    alerts.observe({"n1", "n2"}, {}, {})
    alerts.observe({"n2"}, {}, {})  # n1 lost
    alerts.fenced("n1", "off", "plug")
    alerts.observe({"n2"}, {"web": {"level": "run", "state": "DONE"}}, {"web": "run"})
    alerts.close()
    lines = [line.split(": ", 1)[1] for line in log.read_text().splitlines()]
    assert lines == [
        "Node 'n1' is now 'lost'",
        "Fencing Operation off of n1 by n2 for omha@n2: OK (device plug)",
        "Resource operation 'start' for 'web' on 'n2': ok",
    ]


def test_group_start_stop_failure_and_node_join(tmp_path: Path) -> None:
    log = tmp_path / "env.log"
    alerts = Alerts([alert(recorder(tmp_path), log)], "n1")
    alerts.observe({"n1"}, {}, {})
    alerts.observe({"n1", "n2"}, {"web": {"level": "test", "state": "STARTING"}}, {"web": "run"})
    alerts.observe({"n1", "n2"}, {"web": {"level": "run", "state": "DONE"}}, {"web": "run"})
    alerts.observe({"n1", "n2"}, {"web": {"level": "stop", "state": "DONE"}}, {"web": "stop"})
    alerts.observe({"n1", "n2"}, {"web": {"level": "test", "state": "FAILED"}}, {"web": "run"})
    alerts.fence_failed("n2", ["plug: no answer"])
    alerts.close()
    got = records(log)
    kinds = [(e["CRM_alert_kind"], e.get("CRM_alert_task", e.get("CRM_alert_desc"))) for e in got]
    assert kinds == [
        ("node", "member"),
        ("resource", "start"),
        ("resource", "stop"),
        ("resource", "start"),
        ("fencing", "off"),
    ]
    start, stop, failed, fence = got[1:]
    assert stop["CRM_alert_rc"] == "0" and stop["CRM_alert_desc"] == "ok"
    assert start["CRM_alert_rsc"] == "web" and start["CRM_alert_node"] == "n1"
    assert (start["CRM_alert_rc"], start["CRM_alert_status"], start["CRM_alert_desc"]) == ("0", "0", "ok")
    assert (start["CRM_alert_target_rc"], start["CRM_alert_interval"]) == ("0", "0")
    assert (failed["CRM_alert_rc"], failed["CRM_alert_status"], failed["CRM_alert_desc"]) == ("1", "4", "error")
    assert fence["CRM_alert_rc"] == "1" and "plug: no answer" in fence["CRM_alert_desc"]
    sequences = [int(e["CRM_alert_node_sequence"]) for e in got]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    assert all(e["CRM_alert_version"] and e["CRM_alert_recipient"] == str(log) for e in got)
    assert all(e["CRM_notify_kind"] == e["CRM_alert_kind"] for e in got)  # ClusterMon's names too


def test_select_and_recipients(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    agent = recorder(tmp_path)
    only_nodes = Alert(str(agent), (str(first), str(second)), 10.0, frozenset({"node"}), "%s")
    alerts = Alerts([only_nodes], "n1")
    alerts.observe({"n1"}, {}, {})
    alerts.fenced("n2", "reboot", "plug")  # not selected: never queued
    alerts.observe({"n1", "n2"}, {}, {})
    alerts.close()
    for log in (first, second):
        assert [e["CRM_alert_kind"] for e in records(log)] == ["node"]


def test_no_secret_of_the_daemon_reaches_an_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMHA_FENCE_PASSWORD", "hunter2")
    monkeypatch.setenv("LD_PRELOAD", "")
    log = tmp_path / "env.log"
    alerts = Alerts([alert(recorder(tmp_path), log)], "n1")
    alerts.fenced("n2", "off", "plug")
    alerts.close()
    (env,) = records(log)
    assert "hunter2" not in log.read_text()
    assert {k for k in env if not k.startswith(("CRM_alert_", "CRM_notify_"))} <= {"PATH", "LC_ALL", "HOME", "PWD"}


def test_an_agent_is_killed_at_its_timeout_with_what_it_started(tmp_path: Path) -> None:
    nap = f"600.{os.getpid()}"
    agent = recorder(tmp_path, body=f"sleep {nap} & sleep {nap}")
    log = tmp_path / "env.log"
    alerts = Alerts([alert(agent, log, timeout=0.5)], "n1")
    alerts.fenced("n2", "off", "plug")
    alerts.close(timeout=30)
    assert not log.exists()  # killed before it wrote anything

    def left() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if nap.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    deadline = time.monotonic() + 10  # SIGKILL was sent to the whole group; give the kernel a moment
    while left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left(), "a process of the timed-out alert agent survived"


def test_a_slow_agent_never_holds_the_caller_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = recorder(tmp_path, body="sleep 5")
    alerts = Alerts([alert(agent, tmp_path / "env.log", timeout=0.2)], "n1")
    with caplog.at_level(logging.WARNING, logger="omha.alerts"):
        for i in range(400):  # more than the queue holds: the rest are dropped, never waited for
            alerts.fenced(f"n{i}", "off", "plug")
    assert any("alert queue full" in r.message for r in caplog.records)
    alerts._queue.queue.clear()  # do not wait for hundreds of timeouts at teardown
    alerts.close(timeout=5)


def test_a_missing_or_failing_agent_is_only_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    alerts = Alerts([alert(tmp_path / "absent", "x"), alert(failing, "x")], "n1")
    with caplog.at_level(logging.WARNING, logger="omha.alerts"):
        alerts.observe({"n1"}, {}, {})
        alerts.observe({"n1", "n2"}, {}, {})
        alerts.close()
    messages = " ".join(r.message for r in caplog.records)
    assert "cannot run" in messages and "exited 3" in messages


def test_config_schema(tmp_path: Path) -> None:
    base = {"sharedfs": {"path": str(tmp_path)}}
    config = validate_config({**base, "alerts": [{"path": "/usr/local/bin/a", "recipient": "/var/log/a"}]})
    (entry,) = config.data["alerts"]
    assert entry["recipient"] == ["/var/log/a"] and entry["timeout"] == 30.0
    assert entry["select"] == ["node", "fencing", "resource"]
    with pytest.raises(ConfigError) as info:
        validate_config({**base, "alerts": [{"path": "/a", "select": ["nodes"], "timeout": -1}]})
    assert "[alerts.0.select] 0: expected one of 'node', 'fencing', 'resource'" in str(info.value)
    assert "[alerts.0] timeout: expected a positive number" in str(info.value)


def test_timestamp_format() -> None:
    when = time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)) + 0.123456
    assert format_timestamp("%H:%M:%S.%06N", when) == "03:04:05.123456"
    assert format_timestamp("%Y-%m-%d %H:%M:%S.%3N", when) == "2026-01-02 03:04:05.123"
