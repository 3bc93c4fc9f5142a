"""The ``openmosix`` membership: who is up is what the openMosix kernel says in ``/proc/hpc``, less the nodes
whose daemon stopped publishing.

OpenMosix::HA counted every node whose ``status`` has bit value 2 set for its quorum, including nodes that were
up in the kernel but not running OpenMosix::HA. Here ``up_nodes()`` leaves out the other nodes whose published
status has not changed for ``[openmosix] timeout`` seconds (the original's ``timeout``, judged on this node's
monotonic clock), and the core on top of that requires each node's ``seq`` to change within ``[timing]
dead_after``: a node is lost after whichever is shorter, and only nodes whose daemon is alive count.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from omha_core.backends import Membership, Store
from omha_core.errors import ConfigError
from omha_membership_openmosix import hastat, hpc
from omha_membership_openmosix.layout import Settings, local_node

if TYPE_CHECKING:
    from omha_core.config import Config


class OpenMosixMembership(Membership):
    """Membership from the openMosix kernel's node table; this node's name is its openMosix number."""

    def __init__(self, config: Config, store: Store) -> None:
        super().__init__(config, store)
        self.settings = Settings.from_config(config)
        self._me: str | None = None
        #: with a store other than openmosix's, this membership reads the statuses itself to judge ``timeout``
        self.silence = hastat.Silence()

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
        """The nodes the kernel sees up (``status & 2``; unreadable or garbage entries are down), less the other
        nodes whose status has not changed for ``[openmosix] timeout`` seconds."""
        up = hpc.up_nodes(self.settings.hpcbase)
        return up - self._stale(up)

    def _stale(self, up: set[str]) -> set[str]:
        from omha_membership_openmosix.store import OpenMosixStore

        if isinstance(self.store, OpenMosixStore):
            # the daemon read every status through this store just before asking: its observations are current
            return self.store.stale_nodes(up)
        statuses = self.store.statuses()
        for node in set(statuses) | up:
            self.silence.observe(node, hastat.token(statuses.get(node)))
        return self.silence.stale(up - {self.local_node()}, self.settings.timeout)

    def is_member(self) -> bool:
        """True while the kernel lists this node as up; False when openMosix dropped it (stop local groups)."""
        return self.local_node() in hpc.up_nodes(self.settings.hpcbase)
