"""The ``fence_agent`` device: any ClusterLabs fence agent (fence_apc_snmp, fence_ipmilan, fence_wti, ...).

It speaks the agents' documented calling convention: ``name=value`` lines on standard input (``action``,
``plug``, the agent's own options such as ``ip``, ``username``, ``password``, ``community``), and exit codes
(off / on / reboot: 0 done, 1 failed; status: 0 on, 2 off, 1 error). The agents verify ``off`` / ``on``
themselves by polling the device's status, so a 0 exit is a verified result. Secrets (``password``,
``community``) come from the device entry directly, or better from ``password_file`` / ``password_env``
(likewise ``community_*``), and are passed to the agent on stdin, never on its command line.

Example::

    [[fencing.devices]]
    name = "pdu1"
    kind = "fence_agent"
    agent = "fence_apc_snmp"
    args = { ip = "pdu1.example", snmp_version = "2c" }
    community_file = "/etc/omha/pdu1.community"
    nodes = { n1 = "1", n2 = "2", n3 = ["3", "4"] }
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core import hookimpl
from omha_core.config import read_secret
from omha_core.errors import ConfigError
from omha_core.fence_devices import FenceDevice, FenceResult

SECRETS = ("password", "community")


class FenceAgentDevice(FenceDevice):
    """Drives a ClusterLabs fence agent over its stdin protocol."""

    schema = {
        vol.Required("agent"): cv.string,
        vol.Optional("args", default={}): {cv.identifier: vol.Any(str, int, float, bool)},
        **{vol.Optional(f"{s}{suffix}"): cv.string for s in SECRETS for suffix in ("", "_file", "_env")},
    }
    can_verify = True

    def _stdin(self, action: str, plug: str) -> str:
        lines = [f"action={action}", f"plug={plug}"]
        for key, value in dict(self.options.get("args", {})).items():
            if isinstance(value, bool):
                if value:
                    lines.append(key)
            else:
                lines.append(f"{key}={value}")
        for secret in SECRETS:
            value = read_secret(self.options, secret)
            if value is not None:
                lines.append(f"{secret}={value}")
        return "\n".join(lines) + "\n"

    def _call(self, action: str, plug: str) -> tuple[int, str]:
        agent = str(self.options["agent"])
        path = shutil.which(agent) or shutil.which(agent, path="/usr/sbin:/sbin")
        if path is None:
            return 127, f"fence agent {agent!r} not found (install it, e.g. Debian's fence-agents)"
        try:
            stdin = self._stdin(action, plug)
        except ConfigError as exc:
            return 1, str(exc)
        try:
            out = subprocess.run(
                [path],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=float(self.options.get("timeout", 20.0)),
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return 124, f"{agent} timed out after {self.options.get('timeout', 20.0):g} s"
        lines = [ln for ln in (out.stdout + "\n" + out.stderr).splitlines() if ln.strip()]
        return out.returncode, " | ".join(lines[-3:])

    def _each(self, action: str, targets: list[str]) -> FenceResult:
        for plug in targets:
            code, text = self._call(action, plug)
            if code != 0:
                return FenceResult(ok=False, message=f"{self.name}: {action} plug {plug}: exit {code}: {text}"[:500])
        return FenceResult(ok=True, verified=True, message=f"{self.name}: {action} plug {', '.join(targets)}")

    def off(self, targets: list[str]) -> FenceResult:
        return self._each("off", targets)

    def on(self, targets: list[str]) -> FenceResult:
        return self._each("on", targets)

    def reboot(self, targets: list[str]) -> FenceResult:
        if len(targets) == 1:
            return self._each("reboot", targets)
        return super().reboot(targets)  # dual supplies: all off, verified, then all on

    def status(self, targets: list[str]) -> FenceResult:
        states = []
        for plug in targets:
            code, text = self._call("status", plug)
            if code not in (0, 2):
                return FenceResult(ok=False, message=f"{self.name}: status plug {plug}: exit {code}: {text}"[:500])
            states.append("on" if code == 0 else "off")
        state = "on" if "on" in states else "off"
        return FenceResult(ok=True, verified=True, state=state, message=f"{self.name}: {state}")


@hookimpl
def omha_fence_devices() -> dict[str, Any]:
    return {"fence_agent": FenceAgentDevice}
