"""``omha check`` on cltab lines using ``@ocf`` and ``@lsb``: every problem as ``FILE:LINE: message``, parameters
checked against the agent's meta-data, and ``validate-all`` run where the agent is installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ocf_support import agent_env


def omha_check(cltab: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "omha_core.cli", "check", "--cltab", str(cltab)]
    if config is not None:
        argv[3:3] = ["-c", str(config)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=agent_env())


@pytest.mark.usefixtures("heartbeat_agents")
def test_bad_entries_are_named_by_file_and_line(tmp_path: Path) -> None:
    cltab = tmp_path / "cltab"
    cltab.write_text(
        f"web:ok:run:respawn:@ocf heartbeat:Dummy state={tmp_path}/d.state\n"
        "web:unknown:run:respawn:@ocf heartbeat:Dummy stat=/tmp/x\n"
        "web:missing:run:respawn:@ocf ocf:heartbeat:IPaddr2 cidr_netmask=24\n"
        "web:op:run:respawn:@ocf heartbeat:Dummy op.monitor.intervl=5s\n"
        "web:dur:run:respawn:@ocf heartbeat:Dummy op.start.timeout=soon\n"
        "web:name:run:respawn:@ocf ../../bin/sh\n"
        "web:lsb:run:respawn:@lsb cron color=red\n"
    )
    out = omha_check(cltab)
    assert out.returncode == 1
    errors = out.stderr.splitlines()
    assert f"{cltab}:2: @ocf heartbeat:Dummy: unknown parameter stat (the agent takes: state, fake)" in errors
    assert f"{cltab}:3: @ocf heartbeat:IPaddr2: missing required parameter ip" in errors
    assert any(e.startswith(f"{cltab}:4: ") and "op.monitor.intervl" in e for e in errors)
    assert any(e.startswith(f"{cltab}:5: ") and "'soon' is not a duration" in e for e in errors)
    assert any(e.startswith(f"{cltab}:6: ") and "is not an agent name" in e for e in errors)
    assert any(e.startswith(f"{cltab}:7: ") and "init scripts take no parameters" in e for e in errors)
    assert not any(e.startswith(f"{cltab}:1:") for e in errors)


def test_validate_all_runs_where_the_agent_is_installed(ocf_root: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, config, state = ocf_root
    cltab = tmp_path / "cltab"
    cltab.write_text(f"web:p:run:respawn:@ocf test:Probe state={state} color=blue\n")
    out = omha_check(cltab, config)
    assert out.returncode == 1
    assert f"{cltab}:1: @ocf test:Probe validate-all: exit 6 (not configured): blue is not allowed" in out.stderr
    assert (state / "calls").read_text().split() == ["validate-all"]  # nothing was started
    cltab.write_text(f"web:p:run:respawn:@ocf test:Probe state={state} color=green\n")
    out = omha_check(cltab, config)
    assert out.returncode == 0, out.stderr


def test_an_agent_missing_here_is_a_warning(ocf_root: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, config, _ = ocf_root
    cltab = tmp_path / "cltab"
    cltab.write_text("web:p:run:respawn:@ocf test:Elsewhere anything=1\nweb:l:run:respawn:@lsb not-here\n")
    out = omha_check(cltab, config)
    assert out.returncode == 0, out.stderr
    assert f"warning: {cltab}:1: @ocf test:Elsewhere is not installed here" in out.stderr
    assert f"warning: {cltab}:2: @lsb not-here: no executable /etc/init.d/not-here" in out.stderr
