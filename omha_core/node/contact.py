"""This node's contact with the store, and the isolation watchdog that acts when it is lost.

A node that cannot read or publish through the store (NFS hung, etcd unreachable, lease lost) is declared lost
by the others ``dead_after`` after its last publication, and they take its groups over: it must have stopped them
by then. :meth:`Contact.watch` runs beside the cycle, so a store call that hangs cannot keep the groups running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from omha_core.backends import Membership
from omha_core.hactl import STOP_LEVEL

log = logging.getLogger("omha.daemon")


class Contact:
    """When the last cycle got through, the last store error, and whether this node isolated itself.

    :param clock: this node's monotonic clock.
    :param isolate_after: seconds without a complete cycle after which every local group is stopped.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        membership: Membership,
        heartbeat: float,
        dead_after: float,
        isolate_after: float,
    ) -> None:
        self.clock, self.membership = clock, membership
        self.heartbeat, self.dead_after, self.isolate_after = heartbeat, dead_after, isolate_after
        #: clock time of the last complete cycle (store read, decisions, status published)
        self.last_ok = clock()
        #: the last store failure, until a read gets through (published in status)
        self.store_error: str | None = None
        self.isolated = False

    def store_failed(self, message: str) -> None:
        """A store call failed: logged when the message changes, kept for status and the watchdog."""
        if self.store_error != message:
            log.error("store: %s", message)
        self.store_error = message

    def store_reached(self) -> None:
        """A cycle's read of the cluster got through."""
        self.store_error = None

    def cycle_done(self) -> None:
        """A cycle got through to publishing this node's status: in contact again."""
        self.last_ok = self.clock()
        if self.isolated:
            log.warning("contact with the store is back")
            self.isolated = False

    async def watch(self, init: Any) -> None:
        """Stop every group of ``init`` when this node can no longer prove it is a member, or when no cycle has
        completed for ``isolate_after`` seconds (default ``dead_after / 2``): half-way to the others' verdict."""
        while True:
            await asyncio.sleep(min(self.heartbeat, self.isolate_after / 4))
            silent = self.clock() - self.last_ok
            try:
                member = self.membership.is_member()
            except Exception:
                member = False
            if (silent <= self.isolate_after and member) or init is None:
                continue
            active = [g for g, s in init.status().items() if s.get("level") not in (None, STOP_LEVEL)]
            if not self.isolated:
                why = (
                    "this node is no longer a member (lease lost)"
                    if not member
                    else f"no contact with the store for {silent:.1f} s"
                    f" ({self.store_error or 'store calls do not return'})"
                )
                log.error("%s: stopping every local group (%s)", why, ", ".join(active) or "none running")
                self.isolated = True
            # cleanup entries only while the others cannot yet have declared this node lost and taken over
            cleanup = member and silent < self.dead_after
            for group in active:
                init.tell(group, STOP_LEVEL, cleanup=cleanup)
