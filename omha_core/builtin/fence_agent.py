"""The ``fence_agent`` device: any ClusterLabs fence agent (fence_apc_snmp, fence_ipmilan, fence_wti, ...).

It speaks the agents' documented calling convention: ``name=value`` lines on standard input (``action``,
``plug``, the agent's own options such as ``ip``, ``username``, ``password``, ``community``), and exit codes
(off / on / reboot: 0 done, 1 failed; status: 0 on, 2 off, 1 error). The agents verify ``off`` / ``on``
themselves by polling the device's status, so a 0 exit is a verified result.

Boolean options in ``args`` follow the agents' own stdin parser (fencing.py ``_parse_input_stdin``): a flag
is only set by a value, ``name=1`` (a bare ``name`` line is ignored with a warning), so ``true`` is written
``name=1`` and ``false`` is left out: older agents test a flag's presence, and would read ``name=0`` as set.

``args`` may not hold what omha sets itself: ``action`` (and its old name ``option``), ``plug``, ``port``,
``uuid``, ``nodename``; the configuration is refused, naming the key (see :data:`RESERVED_ARGS`).

Secrets (``password``, ``community``) come from the device entry directly, or better from ``password_file`` /
``password_env`` (likewise ``community_*``), and are passed to the agent on stdin, never on its command line.
Secret-named keys inside ``args`` (``args = { passwd = "..." }``) are secrets too: they are scrubbed from every
message, like the others.

Time: each agent run may take ``timeout`` seconds, a native single-outlet ``reboot`` twice that plus
``reboot_pause`` (agents switch off, wait, and on); at the deadline the agent's process group is killed.

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

import logging
import shutil
from collections.abc import Mapping
from typing import Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import ConfigError, FenceError
from omha_core.fence_devices import DEFAULT_TIMEOUT, FenceDevice, FenceResult, Target, run_process
from omha_core.secrets import is_secret, read_secret, scrub

SECRETS = ("password", "community")
log = logging.getLogger("omha.fencing")

#: ``args`` keys that would override what omha itself tells the agent, by every name the agents' stdin parser
#: accepts for them (fencing.py ``all_opt`` keys and long options, ``-`` and ``_`` alike): the agent keeps the
#: last value it reads, so ``args = { action = "on" }`` would switch a node on when asked to fence it.
RESERVED_ARGS: dict[str, str] = {
    "action": "the action asked for: [fencing] action, the device's action, or omha fence --action",
    "option": "the agents' old name for action; omha sends the action asked for",
    "port": "from the device's nodes map",
    "plug": "from the device's nodes map",
    "uuid": "an alias of plug in some agents; the plug comes from the device's nodes map",
    "nodename": "the node is named by the device's nodes map",
    "node_name": "the node is named by the device's nodes map",
}


def agent_args(value: Any) -> dict[str, Any]:
    """``args``: the agent's own options (name -> string, number or boolean), none of :data:`RESERVED_ARGS`."""
    checked: dict[str, Any] = vol.Schema({cv.identifier: vol.Any(str, int, float, bool)})(value)
    for key in checked:
        why = RESERVED_ARGS.get(key.lower().replace("-", "_"))
        if why is not None:
            raise vol.Invalid(f"omha sets {key!r} itself ({why}); remove it from args", path=[key])
    return checked


def stdin_value(value: Any) -> str | None:
    """How one ``args`` value is written for an agent's stdin parser; None: leave the option out."""
    if isinstance(value, bool):
        return "1" if value else None
    return str(value)


class FenceAgentDevice(FenceDevice):
    """Drives a ClusterLabs fence agent over its stdin protocol."""

    schema = {
        vol.Required("agent"): cv.string,
        vol.Optional("args", default={}): agent_args,
        **{vol.Optional(f"{s}{suffix}"): cv.string for s in SECRETS for suffix in ("", "_file", "_env")},
    }
    can_verify = True

    def required_commands(self) -> Mapping[str, str]:
        """The agent itself, from Debian's fence-agents."""
        return {str(self.options["agent"]): "fence-agents"}

    @property
    def timeout(self) -> float:
        """Seconds one agent run may take."""
        return self.option_float("timeout", DEFAULT_TIMEOUT)

    def max_duration(self, action: str, targets: list[str]) -> float:
        """One agent run per target; a native reboot run: twice the timeout plus the pause; ``list``: up to
        two runs (``list-status``, then ``list`` for agents without it)."""
        if action == "reboot" and len(targets) == 1:
            return self._reboot_timeout()
        if action == "reboot":
            return super().max_duration(action, targets)
        if action == "list":
            return 2 * self.timeout
        return max(1, len(targets)) * self.timeout

    def _reboot_timeout(self) -> float:
        return 2 * self.timeout + self.reboot_pause

    def secrets(self) -> list[str]:
        """Every secret this device sends (for scrubbing what the agent prints back)."""
        values = []
        for key, value in dict(self.options.get("args", {})).items():
            if is_secret(str(key)) and not isinstance(value, bool) and str(value):
                values.append(str(value))
        for secret in SECRETS:
            try:
                value = read_secret(self.options, secret)
            except ConfigError:
                continue
            if value:
                values.append(value)
        return sorted(set(values), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret of this device replaced by ``***``."""
        return scrub(text, self.secrets())

    def _stdin(self, action: str, plug: str | None) -> str:
        """The agent's input: ``args``, the secrets, then ``action`` and ``plug`` last, so that omha's own values
        win even if ``args`` somehow held them (the agents keep the last value of a repeated name)."""
        lines = []
        for key, value in dict(self.options.get("args", {})).items():
            written = stdin_value(value)
            if written is not None:
                lines.append(f"{key}={written}")
        for secret in SECRETS:
            value = read_secret(self.options, secret)
            if value is not None:
                lines.append(f"{secret}={value}")
        lines.append(f"action={action}")
        if plug is not None:
            lines.append(f"plug={plug}")
        return "\n".join(lines) + "\n"

    def _run(self, action: str, plug: str | None) -> tuple[int, str, str]:
        """Run the agent once: (exit status, its standard output, all its output), scrubbed of secrets; 124 on
        timeout, 127 when the agent is not installed. The whole output also goes to the debug log."""
        agent = str(self.options["agent"])
        path = shutil.which(agent) or shutil.which(agent, path="/usr/sbin:/sbin")
        if path is None:
            return 127, "", f"fence agent {agent!r} not found (install it, e.g. Debian's fence-agents)"
        try:
            stdin = self._stdin(action, plug)
        except ConfigError as exc:
            return 1, "", str(exc)
        limit = self._reboot_timeout() if action == "reboot" else self.timeout
        out = run_process([path], limit, input=stdin)
        text = self.scrub(out.stdout + "\n" + out.stderr).strip()
        what = f"{self.name}: {agent} action={action}" + (f" plug={plug}" if plug is not None else "")
        log.debug("%s: exit %s; output:\n%s", what, out.returncode, text)
        if out.returncode is None:
            return 124, "", f"{agent} timed out after {limit:g} s (killed)"
        return out.returncode, self.scrub(out.stdout), text

    def _call(self, action: str, plug: str | None) -> tuple[int, str]:
        """Run the agent once: (exit status, the last lines of its output)."""
        code, _, text = self._run(action, plug)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return code, " | ".join(lines[-3:])

    def _each(self, action: str, targets: list[str]) -> FenceResult:
        """Run ``action`` for every plug, also after one failed (``on`` must reach every supply)."""
        failures = []
        for plug in targets:
            code, text = self._call(action, plug)
            if code != 0:
                failures.append(f"{action} plug {plug}: exit {code}: {text}"[:300])
        if failures:
            return FenceResult(ok=False, message=f"{self.name}: " + "; ".join(failures))
        state = action if action in ("off", "on") else None
        return FenceResult(
            ok=True, verified=True, state=state, message=f"{self.name}: {action} plug {', '.join(targets)}"
        )

    def off(self, targets: list[str]) -> FenceResult:
        return self._each("off", targets)

    def on(self, targets: list[str]) -> FenceResult:
        return self._each("on", targets)

    def reboot(self, targets: list[str]) -> FenceResult:
        """One plug: the agent's own reboot (it switches off, verifies, and on again)."""
        return self._each("reboot", targets)

    def status(self, targets: list[str]) -> FenceResult:
        states = []
        for plug in targets:
            code, text = self._call("status", plug)
            if code not in (0, 2):
                return FenceResult(ok=False, message=f"{self.name}: status plug {plug}: exit {code}: {text}"[:500])
            states.append("on" if code == 0 else "off")
        state = "on" if "on" in states else "off"
        return FenceResult(ok=True, verified=True, state=state, message=f"{self.name}: {state}")

    def list_targets(self) -> list[Target]:
        """The agent's ``list-status`` (``plug,alias,STATE`` lines), or ``list`` (``plug,alias``) for agents
        that lack it.

        :raises FenceError: the agent cannot list (it exits non-zero for both).
        """
        problems = []
        for action in ("list-status", "list"):
            code, stdout, text = self._run(action, None)
            if code == 0:
                return parse_list(stdout)
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            problems.append(f"{action}: exit {code}: {' | '.join(lines[-2:])}")
        raise FenceError(f"{self.name}: the agent cannot list its plugs ({'; '.join(problems)})"[:500])


def parse_list(text: str) -> list[Target]:
    """Targets from a fence agent's ``list`` / ``list-status`` output: ``plug,alias[,ON|OFF|UNKNOWN]`` lines."""
    targets = []
    for line in text.splitlines():
        if not line.strip() or "," not in line:
            continue
        parts = [p.strip() for p in line.split(",")]
        state = parts[2].lower() if len(parts) > 2 and parts[2].lower() in ("on", "off") else None
        targets.append(Target(parts[0], parts[1], state))
    return targets
