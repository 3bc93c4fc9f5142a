"""Run one action of an external agent script (OCF or LSB): a clean environment, a deadline, and nothing left over.

The script runs in a session (and process group) of its own, so that signals aimed at the omha agent process
(the init stopping the entry) do not cut a ``stop`` short, and so that at its deadline the whole group is
killed with SIGKILL, as Pacemaker's executor does. Its output goes to a temporary file, never to a pipe: a
daemon the script starts and that keeps its inherited stdout open must not make us wait for end-of-file.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

from omha_core.errors import ResourceError

#: PATH when the omha process has none: agents call ip, mount, fuser... from the sbin directories
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: variables passed on from the omha agent process: the entry's identity and the init's cell marker
#: (``OMHA_CELL``), through which, without cgroups, the init finds every process the script leaves behind
PASSED_ON = ("OMHA_CELL", "OMHA_NODE", "OMHA_CLUSTER", "OMHA_GROUP", "OMHA_TAG", "OMHA_LEVEL")
#: the exit status reported for an action killed at its deadline (not a real exit status)
TIMED_OUT = -1
#: longest output kept from one action (the tail is what explains a failure)
OUTPUT_LIMIT = 64 * 1024

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|msec|s|sec|m|min|h|hr)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "msec": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Pacemaker-style duration: ``20``, ``20s``, ``500ms``, ``2min``, ``1m``, ``1h``.

    :raises ValueError: with what is expected, when ``text`` is not one.
    """
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration; expected e.g. 20s, 500ms, 2min or a number of seconds")
    return float(m[1]) * _UNITS[(m[2] or "s").lower()]


@dataclass(frozen=True)
class Outcome:
    """What one action did: its exit status (:data:`TIMED_OUT` when killed at the deadline) and its output."""

    rc: int
    output: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.rc == TIMED_OUT

    def tail(self, lines: int = 5) -> str:
        """The last non-empty lines of the output, on one line, for an error message."""
        kept = [ln.strip() for ln in self.output.splitlines() if ln.strip()]
        return " | ".join(kept[-lines:])

    def describe(self, timeout: float, meanings: Mapping[int, str] | None = None) -> str:
        """``exit 6 (not configured): <last lines of output>`` or ``timed out after 20 s (killed)``; the exit
        status is named from *meanings* (the OCF or LSB table of the action) when one is given."""
        if self.timed_out:
            what = f"timed out after {timeout:g} s (killed)"
        elif meanings is None:
            what = f"exit {self.rc}"
        else:
            what = f"exit {self.rc} ({meanings.get(self.rc, 'unknown exit code')})"
        tail = self.tail()
        return f"{what}: {tail}" if tail else what


def base_environment() -> dict[str, str]:
    """The environment every script starts from: built from scratch (omha's own environment may carry
    secrets), with a PATH that reaches the sbin directories, the C locale so that the commands an agent
    parses print what it expects, and the :data:`PASSED_ON` variables, so that whatever the script starts is
    still found and stopped with its entry."""
    path = os.environ.get("PATH") or DEFAULT_PATH
    for extra in ("/usr/sbin", "/sbin"):
        if extra not in path.split(":"):
            path += ":" + extra
    env = {"PATH": path, "LC_ALL": "C", "LANG": "C", "HOME": "/", "SHELL": "/bin/sh"}
    env.update({k: os.environ[k] for k in PASSED_ON if k in os.environ})
    return env


def run_script(argv: list[str], env: Mapping[str, str], timeout: float, cwd: str = "/") -> Outcome:
    """Run ``argv`` with exactly ``env`` and wait for it, at most ``timeout`` seconds.

    At the deadline, and when this process is interrupted (a signal handler raising), the script's whole
    process group is killed with SIGKILL before this function returns or re-raises.

    :raises ResourceError: when the script cannot be started at all (missing, not executable).
    """
    begun = time.monotonic()
    with tempfile.TemporaryFile(prefix="omha-agent-") as out:
        try:
            proc = subprocess.Popen(
                argv,
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise ResourceError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc = TIMED_OUT
        except BaseException:
            _kill_group(proc)
            raise
        out.seek(0)
        data = out.read()
    text = data[-OUTPUT_LIMIT:].decode("utf-8", "replace")
    return Outcome(rc, text, time.monotonic() - begun)


def echo(label: str, outcome: Outcome, lines: int = 20) -> None:
    """Copy the last ``lines`` of a script's output to stderr, which the init logs as the entry's output."""
    kept = [ln for ln in outcome.output.splitlines() if ln.strip()][-lines:]
    for line in kept:
        print(f"{label}: {line}", file=sys.stderr)
    sys.stderr.flush()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the script's process group (it leads its own session) and reap the script."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
