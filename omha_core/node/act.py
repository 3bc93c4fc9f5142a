"""Carrying out a cycle's decisions: the claims, the releases and the local init's levels.

Both functions keep ``holders`` (group -> the node holding its claim, as this cycle knows it) up to date with
what they did, so that the rest of the cycle (the decision, the status published) sees the claims as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from omha_core.backends import Store
from omha_core.decide import Action
from omha_core.hactl import STOP_LEVEL
from omha_core.rules import Failed, claim_breaker

log = logging.getLogger("omha.daemon")


async def break_claims(
    fenced: set[str],
    records: Mapping[str, Mapping[str, Any]],
    alive: set[str],
    holders: dict[str, str],
    *,
    me: str,
    store: Store,
) -> None:
    """Break the claims of the ``fenced`` nodes whose breaker this node is (:func:`claim_breaker`); the others
    wait for the breaker: a claim stays theirs to see until it is gone."""
    for node in fenced:
        if claim_breaker(node, records, alive) != me:
            continue
        for group, holder in list(holders.items()):
            if holder == node:
                log.warning("%s: breaking %s's claim (fenced)", group, node)
                await asyncio.to_thread(store.break_claim, group, node)
                del holders[group]


async def act(
    actions: list[Action],
    holders: dict[str, str],
    *,
    me: str,
    incarnation: str,
    store: Store,
    init: Any,
    failed: dict[str, Failed],
    clock: Callable[[], float],
) -> None:
    """Carry out :func:`~omha_core.decide.decide`'s ``actions`` in order: take a claim (a refused one cancels
    the group's tell), release one, remember a failed test in ``failed``, or tell the local ``init`` a level."""
    refused: set[str] = set()
    for action in actions:
        group = action.group
        if action.kind == "claim":
            if await asyncio.to_thread(store.claim, group, me, incarnation):
                holders[group] = me
            else:
                refused.add(group)
                log.info("%s: claim lost to another node", group)
        elif action.kind == "release":
            await asyncio.to_thread(store.release_claim, group, me)
            holders.pop(group, None)
        elif action.kind == "failed":
            log.warning("%s: %s on this node; letting another node try", group, action.reason)
            failed[group] = Failed(clock(), action.reason)
        elif action.kind == "tell" and action.level is not None:
            if group in refused:
                continue
            held_elsewhere = action.level == STOP_LEVEL and holders.get(group) not in (None, me)
            if held_elsewhere:  # its cleanup entries are not run here: they could undo the holder's work
                log.warning("%s: stopping here: %s", group, action.reason)
            log.info("%s: -> %s (%s)", group, action.level, action.reason)
            init.tell(group, action.level, cleanup=not held_elsewhere)
