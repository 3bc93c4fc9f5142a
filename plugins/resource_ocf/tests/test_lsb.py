"""``@lsb NAME``: init scripts driven by their LSB exit codes, a small conforming one written here and Debian's
real ``/etc/init.d/logd`` (cluster-glue's ha_logd)."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ocf_support import Respawn, run_agent, wait_for

#: an LSB init script whose service is a ``sleep``, with a pid file: status 0 running, 1 dead with its pid file
#: left, 3 stopped; start and stop succeed when there is nothing to do
INIT_SCRIPT = textwrap.dedent(
    """\
    #!/bin/sh
    ### BEGIN INIT INFO
    # Provides:          napper
    # Short-Description: a sleeping service for the omha tests
    ### END INIT INFO
    PIDFILE="{run}/napper.pid"
    running() {{ [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }}
    echo "$1" >> "{run}/calls"
    case "$1" in
      start) running && exit 0
             setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $! > "$PIDFILE"; exit 0;;
      stop)  running && kill "$(cat "$PIDFILE")"; rm -f "$PIDFILE"; exit 0;;
      status) running && {{ echo running; exit 0; }}
              [ -f "$PIDFILE" ] && {{ echo "dead, pid file left"; exit 1; }}
              echo stopped; exit 3;;
      *) echo "usage: $0 start|stop|status" >&2; exit 2;;
    esac
    """
)


@pytest.fixture
def initd(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(omha.toml with ``[agents.lsb] initd_dir``, the service's run directory), the ``napper`` script installed."""
    initd = tmp_path / "init.d"
    run = tmp_path / "run"
    initd.mkdir()
    run.mkdir()
    script = initd / "napper"
    script.write_text(INIT_SCRIPT.format(run=run))
    script.chmod(0o755)
    config = tmp_path / "omha.toml"
    config.write_text(f'[sharedfs]\npath = "{tmp_path}"\n[agents.lsb]\ninitd_dir = "{initd}"\n')
    yield config, run
    pidfile = run / "napper.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def alive(run: Path) -> bool:
    try:
        os.kill(int((run / "napper.pid").read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def test_start_status_stop(initd: tuple[Path, Path]) -> None:
    config, run = initd
    done = run_agent("lsb", "acquire", "napper", config)
    assert done.returncode == 0, done.stderr
    assert alive(run)
    assert (run / "calls").read_text().split() == ["start", "status"]
    assert run_agent("lsb", "check", "napper", config).returncode == 0
    done = run_agent("lsb", "release", "napper", config)
    assert done.returncode == 0, done.stderr
    assert not (run / "napper.pid").exists()


def test_respawn_restarts_a_dead_service_and_stops_on_sigterm(
    initd: tuple[Path, Path], respawn: Callable[..., Respawn]
) -> None:
    config, run = initd
    r = respawn("lsb", "napper op.monitor.interval=0.2", config)
    r.wait_acquired()
    assert alive(run)
    os.kill(int((run / "napper.pid").read_text()), signal.SIGKILL)  # dies, leaving its pid file: status 1
    assert r.proc.wait(20) == 3
    err = r.proc.communicate()[1]
    assert "exit 1 (dead, but a pid file exists)" in err
    # the recovery stop cleaned up before the entry is started again
    assert (run / "calls").read_text().split()[-2:] == ["status", "stop"]
    r = respawn("lsb", "napper op.monitor.interval=0.2", config)
    r.wait_acquired()
    assert alive(run), "the service started again"
    rc, err = r.stop()
    assert rc == 0, err
    assert not (run / "napper.pid").exists()


def test_a_service_that_comes_up_after_start_exited_is_waited_for(initd: tuple[Path, Path]) -> None:
    """An init script whose daemon forks into the background and writes its pid file a moment after ``start``
    exits (as Debian's logd does): ``status`` says "not running" at first, and the start is not failed for it."""
    config, run = initd
    script = config.parent / "init.d" / "napper"
    late = '( sleep 0.6; setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $! > "$PIDFILE" ) & exit 0;;'
    script.write_text(script.read_text().replace(
        'setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $! > "$PIDFILE"; exit 0;;', late
    ))
    done = run_agent("lsb", "acquire", "napper", config)
    assert done.returncode == 0, done.stderr
    calls = (run / "calls").read_text().split()
    assert calls[0] == "start" and calls.count("status") > 1 and alive(run)


def test_a_service_that_never_comes_up_fails_at_the_start_timeout(initd: tuple[Path, Path]) -> None:
    config, run = initd
    script = config.parent / "init.d" / "napper"
    script.write_text(script.read_text().replace(
        'setsid sleep 100000 >/dev/null 2>&1 < /dev/null & echo $! > "$PIDFILE"; exit 0;;', "exit 0;;"
    ))
    done = run_agent("lsb", "acquire", "napper op.start.timeout=1", config)
    assert done.returncode != 0
    assert "start exited 0, but status says exit 3 (not running)" in done.stderr
    assert (run / "calls").read_text().split().count("status") > 1  # asked again, then gave up (above)


def test_missing_script_fails_the_fitness_check(initd: tuple[Path, Path]) -> None:
    config, _ = initd
    done = run_agent("lsb", "check", "absent", config)
    assert done.returncode == 1 and "is not installed on this node" in done.stderr


def test_debians_logd_init_script() -> None:
    """A real init script from a Debian package: start, LSB status 0, stop; its stale pid file (status 1) is not
    taken for a running service."""
    script = Path("/etc/init.d/logd")
    if not (script.exists() and Path("/usr/lib/heartbeat/ha_logd").exists()):
        pytest.skip("needs cluster-glue's /etc/init.d/logd (installed with resource-agents by 'make test')")
    pidfile = Path("/run/logd.pid")
    if subprocess.run([str(script), "status"], capture_output=True).returncode == 0:
        pytest.skip("ha_logd is already running on this machine; not touching it")
    try:
        done = run_agent("lsb", "acquire", "logd")
        assert done.returncode == 0, done.stderr
        assert subprocess.run([str(script), "status"], capture_output=True).returncode == 0
        done = run_agent("lsb", "release", "logd")
        assert done.returncode == 0, done.stderr
        wait_for(lambda: subprocess.run([str(script), "status"], capture_output=True).returncode != 0, "logd stopped")
        from omha_resource_ocf.lsb import LsbAgent

        assert LsbAgent.from_command("logd").monitor() is False
    finally:
        run_agent("lsb", "release", "logd")
        pidfile.unlink(missing_ok=True)
