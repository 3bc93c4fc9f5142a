"""The resource-agent contract: what a plugin implements to provide an ``@name`` cltab command.

A cltab entry such as ``web:ip:start:respawn:@vip 192.0.2.10/24 dev=eth0`` names the agent ``vip`` with the
argument string ``192.0.2.10/24 dev=eth0``. The local init runs every agent call in a child process
(``python -m omha_core.agent``) so that a slow or crashing plugin can be timed out and killed like any other
command, and so that agents are supervised exactly like shell commands. How the entry's mode maps to calls:

- ``wait`` / ``once``: :meth:`ResourceAgent.acquire`; leaving the level calls :meth:`ResourceAgent.release`.
- ``respawn``: ``acquire``, then :meth:`ResourceAgent.monitor` every ``monitor_interval`` seconds; a failed
  monitor exits the child so that the init restarts it (re-acquiring) under the rapid-respawn throttle.
  Stopping the entry (or the daemon dying) makes the child call ``release`` before it exits.
- ``test``: :meth:`ResourceAgent.check`; success passes the group's fitness test on this node.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from omha_core.errors import ResourceError


class ResourceAgent(ABC):
    """Base class of resource agents. Subclass it and return the class from ``omha_resource_agents``.

    :meth:`acquire`, :meth:`release` and :meth:`monitor` are abstract: an agent lacking one is refused when its
    plugin's ``omha_resource_agents`` is read, with the plugin's name and the missing method.

    :param args: the positional words of the cltab command after ``@name`` (``key=value`` words removed).
    :param params: the ``key=value`` words of the cltab command.
    :param options: this agent's section of ``omha.toml`` (``[agents.<name>]``), already validated.
    """

    #: seconds between two monitor calls under ``respawn`` (an agent may set it per instance from its params)
    monitor_interval: float = 2.0
    #: the keys ``[agents.<name>]`` in omha.toml may hold (``omha check`` and the daemon refuse others);
    #: None leaves the section unchecked (the agent validates it in :meth:`validate`)
    option_names: frozenset[str] | None = None
    #: programs the agent runs, each with the Debian package that ships it (``omha check --system`` reports
    #: those missing on this node)
    system_commands: Mapping[str, str] = {}
    #: the ``key=value`` parameters the agent takes, as a voluptuous dict schema of key -> validator built from
    #: :mod:`omha_core.params` (as :attr:`FenceDevice.schema <omha_core.fence_devices.FenceDevice.schema>`
    #: declares a device's options); the agent applies it with :func:`omha_core.params.check_params`. Empty for
    #: agents whose parameters are free-form (``@ocf`` passes them to the script).
    params_schema: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        self.args = args
        self.params = params
        self.options = options

    @classmethod
    def from_command(cls, argstring: str, options: Mapping[str, Any] | None = None) -> ResourceAgent:
        """Build an agent from the text that follows ``@name`` in a cltab command."""
        try:
            words = shlex.split(argstring)
        except ValueError as exc:
            raise ResourceError(f"cannot split arguments {argstring!r}: {exc}") from exc
        args = [w for w in words if cls.positional(w)]
        params = dict(w.split("=", 1) for w in words if not cls.positional(w))
        return cls(args, params, options or {})

    @classmethod
    def positional(cls, word: str) -> bool:
        """Is ``word`` a positional argument rather than a ``key=value`` parameter? Agents whose arguments may
        contain ``=`` (``LABEL=www`` devices) override this instead of re-parsing the command."""
        return "=" not in word

    def validate(self) -> None:  # noqa: B027
        """Raise :class:`ResourceError` when the arguments are malformed (called by ``omha check``)."""

    def validate_local(self) -> list[str]:
        """Checks that need this machine (``omha check`` runs them; the daemon never does, since what one node
        lacks must not refuse a cltab for the whole cluster): raise :class:`ResourceError` when the entry cannot
        work here, return warnings for what could not be checked here. Default: nothing to check."""
        return []

    @abstractmethod
    def acquire(self) -> None:
        """Bring the resource up on this node; idempotent. Raise :class:`ResourceError` on failure."""
        raise NotImplementedError

    @abstractmethod
    def release(self) -> None:
        """Take down exactly what :meth:`acquire` brought up; idempotent. Raise on failure."""
        raise NotImplementedError

    @abstractmethod
    def monitor(self) -> bool:
        """Return True while the resource is healthy on this node."""
        raise NotImplementedError

    def check(self) -> None:  # noqa: B027
        """Fitness test: raise :class:`ResourceError` with a reason when this node cannot host the resource."""
