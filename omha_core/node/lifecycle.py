"""The daemon's start and stop around its loop: waiting out a previous incarnation, and the graceful shutdown.

At start, before publishing anything or touching a claim, the node makes sure no other daemon is this node
(:func:`wait_out_previous_incarnation`). At the stop, every local group is stopped while the node keeps
heartbeating, then its claims are released, except those of groups whose stop failed: the others must fence this
node before taking those over (:class:`Shutdown`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from omha_core.backends import Membership, Store
from omha_core.errors import StoreError
from omha_core.node.publish import still_holding
from omha_core.uniqueness import DuplicateNode, wait_out_previous

log = logging.getLogger("omha.daemon")


async def wait_out_previous_incarnation(
    store: Store,
    node: str,
    dead_after: float,
    heartbeat: float,
    stopping: asyncio.Event,
    store_failed: Callable[[str], None],
) -> Any:
    """:func:`~omha_core.uniqueness.wait_out_previous`, retried every heartbeat while the store fails (nothing
    runs here yet, so waiting is safe; starting without the check is not): a store that is down at boot is not
    a crash. Returns the previous incarnation's status (None: there was none, or ``stopping`` was set)."""
    while not stopping.is_set():
        try:
            return await asyncio.to_thread(wait_out_previous, store, node, dead_after, heartbeat / 2)
        except DuplicateNode:
            raise
        except Exception as exc:  # StoreError, or a backend plugin's bug
            store_failed(str(exc) if isinstance(exc, StoreError) else f"backend failed: {type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), heartbeat)
    return None


class Shutdown:
    """Stopping this node's groups and leaving the cluster; its flags are published in status.

    :param publish: publishes this node's status (the others must keep seeing it alive while it stops).
    """

    def __init__(
        self, node: str, store: Store, membership: Membership, heartbeat: float, publish: Callable[[], Awaitable[None]]
    ) -> None:
        self.node, self.store, self.membership, self.heartbeat, self.publish = (
            node,
            store,
            membership,
            heartbeat,
            publish,
        )
        #: the stop began: this node counts for no quorum and starts nothing
        self.shutting_down = False
        #: the init's shutdown is over: what is not still held is stopped
        self.groups_stopped = False
        #: every local group stopped: nobody needs to fence this node
        self.stopped_cleanly = False

    def holding(self, init: Any) -> set[str] | None:
        """After the init's shutdown, the groups whose stop failed (:func:`still_holding`); None before."""
        if not self.groups_stopped:
            return None
        return still_holding(init.status()) if init is not None else set()

    async def stop_groups(self, init: Any) -> set[str]:
        """Stop every group of ``init``, heartbeating meanwhile; return the groups whose stop failed."""
        log.info("shutting down: stopping every local group")
        self.shutting_down = True
        beating = asyncio.ensure_future(self._beat_while_stopping())
        try:
            if init is not None:
                await init.shutdown()
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
        self.groups_stopped = True
        holding = self.holding(init) or set()
        if holding:
            log.error(
                "could not stop %s: keeping the claims, so that the others fence this node before taking over",
                ", ".join(sorted(holding)),
            )
        self.stopped_cleanly = not holding  # every local process is gone: nobody needs to fence this node now
        return holding

    async def _beat_while_stopping(self) -> None:
        """Keep heartbeating while the groups stop, which may take longer than ``dead_after``: the others must
        not declare this node lost and take over groups it is still stopping (the claims are kept until then)."""
        while True:
            try:
                await asyncio.to_thread(self.membership.heartbeat)
                await self.publish()
            except Exception as exc:
                log.warning("while stopping: %s", exc)
            await asyncio.sleep(self.heartbeat)

    async def release_claims(self, keep: set[str], duplicate: bool) -> None:
        """Release this node's claims but those of ``keep``. A ``duplicate`` daemon under our name may still run
        the groups of our claims: then none is released, and the others break them only after fencing this node."""
        if duplicate:
            return
        claims = await asyncio.to_thread(self.store.claims)
        for group, held in claims.items():
            if held.get("node") == self.node and group not in keep:
                await asyncio.to_thread(self.store.release_claim, group, self.node)
