"""``@lsb NAME``: an init script (``/etc/init.d/NAME``) driven by its LSB exit codes.

The LSB core specification's init-script actions: ``start`` and ``stop`` exit 0 on success, including when
there was nothing to do (starting a running service, stopping a stopped one); ``status`` exits 0 when the
service runs, 1 when it is dead but a pid file remains, 2 when it is dead but a lock file remains, 3 when it
is not running, 4 when its state is unknown. Like Pacemaker's ``lsb:`` class, only 0 counts as running.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ResourceError
from omha_resource_ocf.runner import Outcome, base_environment, echo, run_script
from omha_resource_ocf.script import DEFAULT_INTERVAL, NAME_RE, ScriptAgent

log = logging.getLogger("omha.lsb")

DEFAULT_INITD = "/etc/init.d"
LSB_RUNNING, LSB_NOT_RUNNING = 0, 3
#: seconds between two ``status`` calls while a started service is not running yet
STATUS_POLL = 0.1
#: what ``status`` exit codes mean (LSB core specification, "Init Script Actions")
STATUS = {
    0: "running",
    1: "dead, but a pid file exists",
    2: "dead, but a lock file exists",
    3: "not running",
    4: "status unknown",
}


def describe(outcome: Outcome, timeout: float, action: str) -> str:
    """What an action did, for a message; only ``status`` has exit codes with an LSB meaning worth naming."""
    return outcome.describe(timeout, STATUS if action == "status" else None)


class LsbAgent(ScriptAgent):
    """``@lsb NAME [op.monitor.interval=10s op.start.timeout=20s ...]`` (see the README)."""

    option_names = frozenset({"initd_dir", "default_timeout"})

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        super().__init__(args, params, options)
        self._checked = False

    @property
    def name(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def script(self) -> str:
        return os.path.join(str(self.options.get("initd_dir") or DEFAULT_INITD), self.name)

    def installed(self) -> bool:
        return os.path.isfile(self.script) and os.access(self.script, os.X_OK)

    def timeout(self, action: str) -> float:
        """``op.ACTION.timeout`` (``status`` uses the monitor's), else ``default_timeout`` (20 s)."""
        key = "monitor" if action == "status" else action
        return self.op_timeouts.get(key) or self.default_timeout()

    def _run(self, action: str) -> tuple[Outcome, float]:
        if not self.installed():
            raise ResourceError(f"@lsb {self.name} is not installed on this node: no executable {self.script}")
        timeout = self.timeout(action)
        outcome = run_script([self.script, action], base_environment(), timeout)
        if action in ("start", "stop"):
            echo(f"@lsb {self.name} {action}", outcome)
        return outcome, timeout

    def validate(self) -> None:
        """One script name (no path), and only ``op.`` words: an init script takes no parameters."""
        if self._checked:
            return
        if len(self.args) != 1 or not NAME_RE.match(self.args[0]):
            raise ResourceError(
                f"expected the name of one script in the init.d directory (e.g. ssh), got {self.args or 'none'}"
            )
        self.parse_ops()
        if self.agent_params:
            raise ResourceError(
                f"@lsb {self.name}: init scripts take no parameters ({', '.join(sorted(self.agent_params))}); "
                "only op.start.timeout, op.stop.timeout, op.monitor.timeout and op.monitor.interval"
            )
        self.monitor_interval = self.op_interval or DEFAULT_INTERVAL
        self._checked = True

    def validate_local(self) -> list[str]:
        """``omha check`` on this machine: warn when the script is not here."""
        self.validate()
        return [] if self.installed() else [f"@lsb {self.name}: no executable {self.script} on this machine"]

    def check(self) -> None:
        """Fitness: the script is on this node and executable."""
        self.validate()
        if not self.installed():
            raise ResourceError(f"@lsb {self.name} is not installed on this node: no executable {self.script}")

    def status(self) -> tuple[Outcome, float]:
        return self._run("status")

    def acquire(self) -> None:
        """``start``, then ``status`` must say running (0).

        Many init scripts start a daemon that forks into the background and writes its pid file a moment after
        ``start`` has exited (Debian's ``/etc/init.d/logd`` does): while ``status`` says "not running" (3),
        it is asked again, until the rest of the start timeout runs out. Any other answer is final."""
        self.validate()
        deadline = time.monotonic() + self.timeout("start")
        outcome, timeout = self._run("start")
        if outcome.rc != 0 or outcome.timed_out:
            raise ResourceError(f"@lsb {self.name} start: {describe(outcome, timeout, 'start')}")
        probe, timeout = self.status()
        while probe.rc == LSB_NOT_RUNNING and time.monotonic() < deadline:
            time.sleep(STATUS_POLL)
            probe, timeout = self.status()
        if probe.rc != LSB_RUNNING:
            raise ResourceError(
                f"@lsb {self.name} start exited 0, but status says {describe(probe, timeout, 'status')}"
            )

    def release(self) -> None:
        """``stop``; a non-zero exit is accepted only when ``status`` then says "not running" (3)."""
        self.validate()
        outcome, timeout = self._run("stop")
        if outcome.rc == 0:
            return
        probe, _ = self.status()
        if probe.rc == LSB_NOT_RUNNING:
            log.warning("@lsb %s stop: %s, but status says not running", self.name, describe(outcome, timeout, "stop"))
            return
        raise ResourceError(f"@lsb {self.name} stop: {describe(outcome, timeout, 'stop')}; it may still be running")

    def monitor(self) -> bool:
        """``status`` exit 0: running. Anything else is logged with its LSB meaning, and the entry re-started."""
        outcome, timeout = self.status()
        if outcome.rc == LSB_RUNNING:
            return True
        log.warning("@lsb %s status: %s", self.name, describe(outcome, timeout, "status"))
        if outcome.rc not in (LSB_NOT_RUNNING,):
            # dead with files left, unknown, or timed out: stop it, so that the start that follows begins clean
            try:
                self.release()
            except ResourceError as exc:
                log.error("@lsb %s: recovery stop failed: %s", self.name, exc)
        return False
