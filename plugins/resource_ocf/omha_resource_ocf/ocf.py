"""``@ocf PROVIDER:AGENT key=value ...``: an OCF resource agent (``$OCF_ROOT/resource.d/PROVIDER/AGENT``).

The agent is run as the OCF resource-agent API (1.1) and Pacemaker's executor run it: parameters as
``OCF_RESKEY_<key>``, ``OCF_ROOT``, ``OCF_RESOURCE_INSTANCE`` / ``_TYPE`` / ``_PROVIDER``, the action's timeout
and interval in ``OCF_RESKEY_CRM_meta_timeout`` / ``_interval`` (milliseconds), an environment built from
scratch. How its exit codes are read:

====  ===================  ====================================================================
code  name                 meaning here
====  ===================  ====================================================================
0     OCF_SUCCESS          done; for ``monitor``: running
1-6   OCF_ERR_*            failed (generic, args, unimplemented, perm, not installed, not configured)
7     OCF_NOT_RUNNING      ``monitor``: cleanly stopped (``stop`` returning it is taken as stopped)
8     OCF_RUNNING_PROMOTED ``monitor`` of a promotable agent: running
9     OCF_FAILED_PROMOTED  ``monitor`` of a promotable agent: running, but failed (recovered)
====  ===================  ====================================================================

A monitor that finds the resource failed (1-6, 9, or timed out) stops it before reporting it lost, so that the
re-acquire that follows starts from a clean state, as Pacemaker's stop-then-start recovery does.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ResourceError
from omha_resource_ocf.metadata import Metadata, parse_metadata
from omha_resource_ocf.runner import Outcome, base_environment, echo, run_script
from omha_resource_ocf.script import DEFAULT_INTERVAL, NAME_RE, ScriptAgent

log = logging.getLogger("omha.ocf")

DEFAULT_OCF_ROOT = "/usr/lib/ocf"
OCF_SUCCESS, OCF_NOT_RUNNING, OCF_RUNNING_PROMOTED, OCF_FAILED_PROMOTED = 0, 7, 8, 9
OCF_ERR_UNIMPLEMENTED = 3
#: the OCF exit codes by name, as Pacemaker prints them
CODES = {
    0: "ok",
    1: "error",
    2: "invalid parameter",
    3: "unimplemented feature",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    8: "promoted",
    9: "promoted (failed)",
}
#: seconds ``meta-data`` may take (the OCF spec's advice is 5 s)
METADATA_TIMEOUT = 5.0
#: valid names of parameters: they become environment variables
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_metadata_cache: dict[tuple[str, int, int], Metadata] = {}


def describe(outcome: Outcome, timeout: float) -> str:
    """What an action did, for a message, its exit status named from the OCF table."""
    return outcome.describe(timeout, CODES)


class OcfAgent(ScriptAgent):
    """``@ocf heartbeat:IPaddr2 ip=192.0.2.10 cidr_netmask=24 op.monitor.interval=5s`` (see the README)."""

    option_names = frozenset({"ocf_root", "default_timeout"})
    timed_actions = frozenset({"start", "stop", "monitor", "validate-all", "meta-data"})

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        super().__init__(args, params, options)
        self.provider = ""
        self.type = ""
        self._metadata: Metadata | None = None
        self._checked = False

    # -- what the entry names ----------------------------------------------------------------------------

    @property
    def ocf_root(self) -> str:
        return str(self.options.get("ocf_root") or DEFAULT_OCF_ROOT)

    @property
    def name(self) -> str:
        """How messages name the entry: ``@ocf heartbeat:IPaddr2``."""
        return f"@ocf {self.provider}:{self.type}"

    @property
    def script(self) -> str:
        return os.path.join(self.ocf_root, "resource.d", self.provider, self.type)

    def installed(self) -> bool:
        """True when the agent's script is on this node and executable."""
        return os.path.isfile(self.script) and os.access(self.script, os.X_OK)

    def _parse_name(self) -> None:
        if len(self.args) != 1:
            raise ResourceError(
                f"expected one agent name PROVIDER:AGENT (e.g. heartbeat:IPaddr2) then key=value parameters, "
                f"got {self.args or 'none'}"
            )
        parts = self.args[0].split(":")
        if len(parts) == 3 and parts[0] == "ocf":
            parts = parts[1:]
        if len(parts) != 2 or not all(NAME_RE.match(p) for p in parts):
            raise ResourceError(
                f"{self.args[0]!r} is not an agent name; expected PROVIDER:AGENT, e.g. heartbeat:IPaddr2"
            )
        self.provider, self.type = parts

    def metadata(self) -> Metadata:
        """The agent's meta-data (read once per installed version of the script)."""
        if self._metadata is None:
            st = os.stat(self.script)
            key = (self.script, st.st_mtime_ns, st.st_size)
            if key not in _metadata_cache:
                timeout = self.op_timeouts.get("meta-data", METADATA_TIMEOUT)
                outcome = run_script([self.script, "meta-data"], self.environment("meta-data", timeout), timeout)
                if outcome.rc != OCF_SUCCESS:
                    raise ResourceError(f"{self.name} meta-data failed: {describe(outcome, timeout)}")
                _metadata_cache[key] = parse_metadata(outcome.output[outcome.output.find("<") :], self.name)
            self._metadata = _metadata_cache[key]
        return self._metadata

    def timeout(self, action: str) -> float:
        """The action's timeout: ``op.ACTION.timeout``, else the agent's advice, else ``default_timeout``."""
        if action in self.op_timeouts:
            return self.op_timeouts[action]
        advised = self._metadata.timeouts.get(action) if self._metadata else None
        return advised or self.default_timeout()

    def environment(self, action: str, timeout: float, interval: float = 0.0) -> dict[str, str]:
        """The script's whole environment for ``action`` (nothing inherited but PATH)."""
        env = base_environment()
        env.update(
            OCF_ROOT=self.ocf_root,
            OCF_FUNCTIONS_DIR=os.path.join(self.ocf_root, "lib", "heartbeat"),
            OCF_RA_VERSION_MAJOR="1",
            OCF_RA_VERSION_MINOR="1",
            OCF_RESOURCE_INSTANCE=self.instance_name(self.type),
            OCF_RESOURCE_TYPE=self.type,
            OCF_RESOURCE_PROVIDER=self.provider,
            OCF_RESKEY_CRM_meta_timeout=str(int(timeout * 1000)),
            OCF_RESKEY_CRM_meta_interval=str(int(interval * 1000)),
            HA_LOGTAG=f"{self.type}({self.instance_name(self.type)})",
        )
        if os.environ.get("OMHA_NODE"):
            env["OCF_RESKEY_CRM_meta_on_node"] = os.environ["OMHA_NODE"]
        if action == "monitor":
            env["OCF_CHECK_LEVEL"] = "0"
        for key, value in self.agent_params.items():
            env[f"OCF_RESKEY_{key}"] = value
        return env

    def _run(self, action: str, interval: float = 0.0) -> tuple[Outcome, float]:
        if not self.installed():
            raise ResourceError(f"{self.name} is not installed on this node: no executable {self.script}")
        timeout = self.timeout(action)
        outcome = run_script([self.script, action], self.environment(action, timeout, interval), timeout)
        if action in ("start", "stop"):
            echo(f"{self.name} {action}", outcome)
        return outcome, timeout

    # -- the ResourceAgent contract --------------------------------------------------------------------

    def validate(self) -> None:
        """The name, the ``op.`` words and parameter names; against meta-data where the agent is installed:
        unknown parameters and missing required ones."""
        if self._checked:
            return
        self._parse_name()
        self.parse_ops()
        for key in self.agent_params:
            if not PARAM_RE.match(key):
                raise ResourceError(f"{self.name}: {key!r} is not a parameter name (letters, digits and _)")
        if self.installed():
            meta = self.metadata()
            unknown = sorted(set(self.agent_params) - set(meta.parameters))
            if unknown:
                known = ", ".join(meta.parameters) or "none"
                raise ResourceError(f"{self.name}: unknown parameter {', '.join(unknown)} (the agent takes: {known})")
            missing = [p for p in meta.required() if p not in self.agent_params]
            if missing:
                raise ResourceError(f"{self.name}: missing required parameter {', '.join(missing)}")
        interval = self.op_interval or (self._metadata.monitor_interval if self._metadata else None)
        self.monitor_interval = interval or DEFAULT_INTERVAL
        self._checked = True

    def validate_local(self) -> list[str]:
        """``omha check`` on this machine: ``validate-all`` where the agent is installed (else a warning)."""
        self.validate()
        if not self.installed():
            return [f"{self.name} is not installed here ({self.script}): parameters not checked"]
        self.check()
        return []

    def check(self) -> None:
        """Fitness: the agent is installed and its ``validate-all`` accepts the parameters on this node."""
        self.validate()
        outcome, timeout = self._run("validate-all")
        if outcome.rc in (OCF_SUCCESS, OCF_ERR_UNIMPLEMENTED):
            return
        raise ResourceError(f"{self.name} validate-all: {describe(outcome, timeout)}")

    def acquire(self) -> None:
        """``start``, then one ``monitor`` (interval 0, a probe) that must find it running."""
        self.validate()
        outcome, timeout = self._run("start")
        if outcome.rc != OCF_SUCCESS:
            raise ResourceError(f"{self.name} start: {describe(outcome, timeout)}")
        log.info("%s started in %.2f s", self.name, outcome.seconds)
        probe, timeout = self._run("monitor")
        if probe.rc not in (OCF_SUCCESS, OCF_RUNNING_PROMOTED):
            raise ResourceError(f"{self.name} start reported success, but monitor says {describe(probe, timeout)}")

    def release(self) -> None:
        """``stop``; success (or "not running") means the resource is down on this node."""
        self.validate()
        outcome, timeout = self._run("stop")
        if outcome.rc not in (OCF_SUCCESS, OCF_NOT_RUNNING):
            raise ResourceError(f"{self.name} stop: {describe(outcome, timeout)}; it may still be active here")

    def monitor(self) -> bool:
        """``monitor`` at the entry's interval: True while running (0, or 8 promoted). A failed resource (1-6,
        9, a timeout) is stopped before returning False, so the re-acquire starts it from clean."""
        outcome, timeout = self._run("monitor", self.monitor_interval)
        if outcome.rc in (OCF_SUCCESS, OCF_RUNNING_PROMOTED):
            return True
        if outcome.rc == OCF_NOT_RUNNING:
            log.warning("%s monitor: not running", self.name)
            return False
        log.warning("%s monitor: %s; stopping it before starting it again", self.name, describe(outcome, timeout))
        try:
            self.release()
        except ResourceError as exc:
            log.error("%s: recovery stop failed: %s", self.name, exc)
        return False
