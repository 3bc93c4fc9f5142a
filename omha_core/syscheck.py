"""``omha check --system``: the programs this node's configured plugins run, and which of them are missing.

Resource agents and fence device kinds declare what they run (``system_commands``, or a device's
``required_commands()`` when it depends on its options, as the ``fence_agent`` kind's agent does), each with the
Debian package that ships it. Checked: every fence device of ``omha.toml``, and the agents a cltab uses (every
installed agent when no cltab is given). Programs are looked for on ``$PATH`` and in the sbin directories,
where systemd's PATH finds them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pluggy

    from omha_core.config import Config

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find(command: str) -> str | None:
    """The path of ``command`` on $PATH or in the sbin directories; None when missing."""
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *SBIN])
    return shutil.which(command, path=path)


def missing_tools(config: Config | None, pm: pluggy.PluginManager, agents: Iterable[str] | None) -> list[str]:
    """One message per missing program: what needs it, and the package to install.

    :param config: the node's configuration (its fence devices); None checks agents only.
    :param agents: the resource agents in use (``@name``); None means every installed agent.
    """
    from omha_core.fencing import build_devices
    from omha_core.hooks import resource_agents

    needs: dict[str, tuple[str, list[str]]] = {}  # command -> (package, [who needs it])

    def need(command: str, package: str, who: str) -> None:
        needs.setdefault(command, (package, []))[1].append(who)

    installed = resource_agents(pm)
    for name in sorted(installed if agents is None else set(agents)):
        if name not in installed:
            continue  # an unknown agent is reported by the cltab check itself
        cls, plugin = installed[name]
        for command, package in dict(getattr(cls, "system_commands", {}) or {}).items():
            need(command, package, f"@{name} ({plugin})")
    for dev in build_devices(config, pm) if config is not None else []:
        for command, package in dict(dev.device.required_commands()).items():
            need(command, package, f"fence device {dev.name!r} (kind {dev.kind}, {dev.plugin})")
    return [
        f"missing program {command!r} (Debian package {package}), needed by {', '.join(who)}"
        for command, (package, who) in sorted(needs.items())
        if find(command) is None
    ]
