"""What ``@ocf`` and ``@lsb`` share: the ``op.ACTION.timeout`` / ``op.monitor.interval`` words and the instance name.

A cltab line gives Pacemaker's operation options as ``key=value`` words (``op monitor interval=5s`` in pcs
becomes ``op.monitor.interval=5s``), so they can never be mistaken for one of the agent's own parameters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ResourceError
from omha_core.resources import ResourceAgent
from omha_resource_ocf.runner import parse_duration

#: a word that names an agent, a provider or an init script: no path separators, no leading dot
NAME_RE = re.compile(r"^[A-Za-z0-9_][\w.+\-]*$")
#: seconds an action may take when neither the cltab line nor the agent's meta-data says (Pacemaker's default)
DEFAULT_TIMEOUT = 20.0
#: seconds between two monitors when neither the cltab line nor the agent's meta-data says
DEFAULT_INTERVAL = 10.0


class ScriptAgent(ResourceAgent):
    """A resource agent that drives an external script; subclasses say which actions take a timeout."""

    #: actions whose timeout ``op.ACTION.timeout`` may set
    timed_actions: frozenset[str] = frozenset({"start", "stop", "monitor"})

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        super().__init__(args, params, options)
        #: ``op.ACTION.timeout`` overrides, in seconds
        self.op_timeouts: dict[str, float] = {}
        self.op_interval: float | None = None
        #: the agent's own parameters (every word that is not an ``op.`` word)
        self.agent_params = {k: v for k, v in params.items() if not k.startswith("op.")}

    def parse_ops(self) -> None:
        """Check and read the ``op.`` words. Raises :class:`ResourceError` naming the word and what is expected."""
        for key, value in self.params.items():
            if not key.startswith("op."):
                continue
            parts = key.split(".")
            if len(parts) != 3 or parts[2] not in ("timeout", "interval"):
                raise ResourceError(
                    f"unknown operation option {key!r}: expected op.ACTION.timeout or op.monitor.interval"
                )
            action, what = parts[1], parts[2]
            if what == "interval" and action != "monitor":
                raise ResourceError(f"{key}: only the monitor has an interval (op.monitor.interval=10s)")
            if what == "timeout" and action not in self.timed_actions:
                known = ", ".join(sorted(self.timed_actions))
                raise ResourceError(f"{key}: no such action; timeouts are for {known}")
            try:
                seconds = parse_duration(value)
            except ValueError as exc:
                raise ResourceError(f"{key}: {exc}") from None
            if seconds <= 0:
                raise ResourceError(f"{key}: must be more than 0 s")
            if what == "interval":
                self.op_interval = seconds
            else:
                self.op_timeouts[action] = seconds

    def default_timeout(self) -> float:
        """``default_timeout`` from the agent's omha.toml section, else 20 s."""
        value = self.options.get("default_timeout")
        if value is None:
            return DEFAULT_TIMEOUT
        try:
            seconds = parse_duration(str(value))
        except ValueError as exc:
            raise ResourceError(f"[agents] default_timeout: {exc}") from None
        return seconds if seconds > 0 else DEFAULT_TIMEOUT

    @staticmethod
    def instance_name(fallback: str) -> str:
        """The resource's name for the script: ``GROUP-TAG`` of the cltab entry (unique in the cluster, as tags
        are unique in cltab), or ``fallback`` when the agent runs outside the init."""
        group, tag = os.environ.get("OMHA_GROUP"), os.environ.get("OMHA_TAG")
        return f"{group}-{tag}" if group and tag else fallback
