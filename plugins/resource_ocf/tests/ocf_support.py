"""Helpers of the ``@ocf`` tests that test modules import (the conftest holds the fixtures built on them).

Running ``@ocf`` and ``@lsb`` exactly as the local init does (``python -m omha_core.agent``), and a scratch
OCF root holding a small test agent whose every action is steered by files in its state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

HEARTBEAT = Path("/usr/lib/ocf/resource.d/heartbeat")


#: an OCF agent for the tests: start/stop/monitor exit with the code found in $STATE/<action>.rc (default: the
#: real state), sleep $STATE/<action>.sleep seconds first, and record their environment in $STATE/<action>.env
PROBE_AGENT = textwrap.dedent(
    """\
    #!/bin/sh
    S="$OCF_RESKEY_state"
    meta() { cat <<END
    <?xml version="1.0"?>
    <!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
    <resource-agent name="Probe" version="1.0">
    <version>1.1</version>
    <shortdesc lang="en">test agent</shortdesc>
    <parameters>
    <parameter name="state" required="1"><content type="string"/></parameter>
    <parameter name="color"><content type="string" default="red"/></parameter>
    </parameters>
    <actions>
    <action name="start" timeout="7s"/>
    <action name="stop" timeout="9s"/>
    <action name="monitor" timeout="5s" interval="3s"/>
    <action name="validate-all" timeout="5s"/>
    <action name="meta-data" timeout="5s"/>
    </actions>
    </resource-agent>
    END
    }
    [ "$1" = meta-data ] && { meta; exit 0; }
    env > "$S/$1.env"
    echo "$1" >> "$S/calls"
    [ -f "$S/$1.sleep" ] && sleep "$(cat "$S/$1.sleep")"
    [ -f "$S/$1.rc" ] && exit "$(cat "$S/$1.rc")"
    case "$1" in
      start) touch "$S/running";;
      stop) rm -f "$S/running";;
      monitor) [ -f "$S/running" ] || exit 7;;
      validate-all) [ "$OCF_RESKEY_color" = blue ] && { echo "blue is not allowed" >&2; exit 6; };;
      *) exit 3;;
    esac
    exit 0
    """
)


def agent_env(config: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    if config is not None:
        env["OMHA_CONFIG"] = str(config)
    env.update(extra)
    return env


def run_agent(
    name: str, action: str, args: str, config: Path | None = None, wrap: tuple[str, ...] = (), **extra: str
) -> subprocess.CompletedProcess[str]:
    """One action, to completion, as the init runs it."""
    argv = [*wrap, sys.executable, "-m", "omha_core.agent", name, action, args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=agent_env(config, **extra))


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class Respawn:
    """A ``respawn`` agent process (acquire, then monitor), stopped at teardown if the test did not."""

    def __init__(self, name: str, args: str, config: Path | None = None, wrap: tuple[str, ...] = ()) -> None:
        argv = [*wrap, sys.executable, "-m", "omha_core.agent", name, "respawn", args]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=agent_env(config)
        )
        self.early = ""  # stderr read by :meth:`wait_acquired`

    def wait_acquired(self) -> None:
        """Read stderr until the agent says the resource is in place (acquire done, monitoring begun).

        A test that disturbs the resource before then races the acquire's own confirming monitor, and the
        agent rightly exits 1 (acquire failed) instead of 3 (lost while monitored)."""
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, ""):
            self.early += line
            if ": acquired; monitoring" in line:
                return
        raise AssertionError(f"the agent exited ({self.proc.wait()}) before acquiring: {self.early}")

    def stop(self) -> tuple[int, str]:
        """SIGTERM (the init stopping the entry): the agent releases, then exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, self.early + err

