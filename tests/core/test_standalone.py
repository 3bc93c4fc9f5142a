"""``omha local``: Cluster::Init alone on one machine, as ``clinit`` ran it, with real daemon and client processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.init_helpers import pid_alive

ORIGINAL = Path(__file__).parent.parent / "data" / "original"
MFS1_CLTAB = ORIGINAL / "OpenMosix-HA-0.555/t/master/mfs1/1/var/mosix-ha/cltab"


def omha(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    out = subprocess.run(
        [sys.executable, "-m", "omha_core.cli", *args], cwd=tmp, env=env, capture_output=True, text=True, timeout=60
    )
    if check and out.returncode != 0:
        raise AssertionError(f"omha {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """An ``omha local daemon`` in ``tmp_path`` on the OpenMosix::HA example cltab plus a group named after this
    host; its socket comes from the ``:::socket:`` line, as in the original."""
    (tmp_path / "t").mkdir()
    host = socket.gethostname()
    cltab = tmp_path / "cltab"
    cltab.write_text(
        ":::socket:t/clinit.s\n"
        + MFS1_CLTAB.read_text()
        + f"{host}:h1:1:wait:echo host-$OMHA_LEVEL > t/host\n{host}:h2:1:respawn:sleep 300\n"
    )
    (tmp_path / "omha.toml").write_text("[init]\nstop_grace = [0, 0.3, 0.3]\n")
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "omha_core.cli", "local", "daemon", "--cltab", "cltab", "-c", "omha.toml"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "t" / "clinit.s").exists():
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, "the daemon did not open its socket"
            time.sleep(0.05)
        yield tmp_path, daemon
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if daemon.stderr:
            daemon.stderr.close()


def test_tell_status_cleanup_and_shutdown(local: tuple[Path, subprocess.Popen[str]]) -> None:
    tmp, daemon = local
    # the group defaults to the host name, as in clinit
    assert omha(tmp, "local", "tell", "--cltab", "cltab", "1", "--wait").stdout.split()[1:] == ["1", "DONE"]
    assert (tmp / "t" / "host").read_text() == "host-1\n"
    omha(tmp, "local", "tell", "--cltab", "cltab", "sig", "start", "--wait")
    assert (tmp / "t" / "out").read_text() == "sig starting\n"
    failed = omha(tmp, "local", "tell", "--cltab", "cltab", "bad", "test", "--wait", check=False)
    assert failed.returncode == 1 and failed.stdout == "bad test FAILED\n"
    status = omha(tmp, "local", "status", "--cltab", "cltab").stdout
    assert "sig start DONE\n" in status and "bad test FAILED\n" in status and "  sig2 wait stopped\n" in status
    respawned = next(ln for ln in status.splitlines() if ln.startswith("  h2 respawn running pid "))
    pid = int(respawned.split()[-1])
    # the cleanup entry at 'stop' runs when the group stops
    omha(tmp, "local", "tell", "--cltab", "cltab", "sig", "stop", "--wait")
    assert (tmp / "t" / "out").read_text() == "sig stopping\n"
    # bad input is refused with a reason
    out = omha(tmp, "local", "tell", "--cltab", "cltab", "nosuch", "run", check=False)
    assert out.returncode == 1 and "group 'nosuch' is not in cltab" in out.stderr
    # an invalid cltab is not re-read: the running one stays
    good = (tmp / "cltab").read_text()
    (tmp / "cltab").write_text(good + "broken line\n")
    out = omha(tmp, "local", "reread", "--socket", "t/clinit.s", check=False)
    assert out.returncode == 1 and "cltab:" in out.stderr
    (tmp / "cltab").write_text(good)
    assert pid_alive(pid)
    omha(tmp, "local", "shutdown", "--cltab", "cltab")
    assert daemon.wait(30) == 0
    assert not pid_alive(pid)
    assert not (tmp / "t" / "clinit.s").exists()
    out = omha(tmp, "local", "status", "--cltab", "cltab", check=False)
    assert out.returncode == 1 and "no daemon answers" in out.stderr


def test_sigterm_stops_every_group_running_their_cleanup(local: tuple[Path, subprocess.Popen[str]]) -> None:
    tmp, daemon = local
    omha(tmp, "local", "tell", "--cltab", "cltab", "sig", "start", "--wait")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    assert (tmp / "t" / "out").read_text() == "sig stopping\n"
