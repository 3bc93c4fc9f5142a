"""The ``openmosix`` membership: who is up is what the openMosix kernel says in ``/proc/hpc``.

``up_nodes()`` are the nodes whose ``status`` has bit value 2 set. OpenMosix::HA counted exactly these for its
quorum, including nodes that were up in the kernel but not running OpenMosix::HA. omha's core does not: it
also requires each node's published status ``seq`` to keep changing (its heartbeat tracker, judged on the
observer's monotonic clock), so only nodes whose daemon is alive count.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from omha_core.backends import Membership, Store
from omha_core.errors import ConfigError
from omha_membership_openmosix import hpc
from omha_membership_openmosix.layout import Settings, local_node

if TYPE_CHECKING:
    from omha_core.config import Config


class OpenMosixMembership(Membership):
    """Membership from the openMosix kernel's node table; this node's name is its openMosix number."""

    def __init__(self, config: Config, store: Store) -> None:
        super().__init__(config, store)
        self.settings = Settings.from_config(config)
        self._me: str | None = None

    def open(self) -> None:
        nodes_dir = os.path.join(self.settings.hpcbase, "nodes")
        if not os.path.isdir(nodes_dir):
            raise ConfigError(
                f"[openmosix] hpcbase: {nodes_dir} is not a directory: is the openMosix kernel running here? "
                "(set [openmosix] hpcbase to where its node table is)"
            )
        self.local_node()

    def local_node(self) -> str:
        """This node's openMosix number: ``node`` from omha.toml when set, else the whois command's answer.

        Raises :class:`ConfigError` naming the command when no number can be found.
        """
        if self._me is None:
            self._me = local_node(self.config, self.settings)
        return self._me

    def up_nodes(self) -> set[str]:
        """The nodes the kernel sees up (``status & 2``); unreadable or garbage entries are down."""
        return hpc.up_nodes(self.settings.hpcbase)

    def is_member(self) -> bool:
        """True while the kernel lists this node as up; False when openMosix dropped it (stop local groups)."""
        return self.local_node() in self.up_nodes()
