"""The node loop's decisions outside :func:`omha_core.decide.decide`, as pure functions.

``decide()`` chooses, from one cycle's :class:`~omha_core.decide.View`, what to do with every group. A few
decisions come before that view exists, or carry state from one cycle to the next; they live here, over frozen
inputs, so that they can be read and tested without a daemon, a store or a clock (``now`` is always passed in):

- :func:`lost_holding_groups`: the silent nodes that held groups, which must be fenced before a takeover;
- :func:`claim_breaker`: the one node that breaks a fenced node's claims;
- :func:`expire_failed`: a failed test keeps this node out of a group's running for ``failed_retry`` seconds;
- :func:`settling`: the first moments after start-up, when this node starts nothing;
- :func:`waiting_since`: since when each wanted group has been running nowhere (drives the next-best fallback);
- :func:`track_moves`: which groups reached their level here, and from which node (group-moved notifications).

The daemon (:mod:`omha_core.node.daemon`) keeps the results from one cycle to the next, and does the logging
and the hook calls they lead to.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any, NamedTuple

from omha_core.decide import DONE, PASSED, View
from omha_core.status import NodeStatus


@dataclass(frozen=True)
class Lost:
    """A node lost while holding groups: the incarnation that was lost, and the groups it held."""

    incarnation: str
    #: sorted: the groups active there by its last status, or whose claim it holds
    groups: tuple[str, ...]


def lost_holding_groups(
    statuses: Mapping[str, NodeStatus], alive: Set[str], holders: Mapping[str, str]
) -> dict[str, Lost]:
    """The nodes not ``alive`` whose last status shows a group active, or that hold a group's claim
    (``holders``: group -> node). A lost node that held nothing needs no fence: nothing of it is taken over."""
    lost: dict[str, Lost] = {}
    for node, st in statuses.items():
        if node in alive:
            continue
        active = [g for g, inst in st.groups.items() if inst.active]
        held = [g for g, h in holders.items() if h == node]
        if active or held:
            lost[node] = Lost(st.incarnation, tuple(sorted({*active, *held})))
    return lost


def claim_breaker(node: str, records: Mapping[str, Mapping[str, Any]], alive: Set[str]) -> str:
    """The one node that breaks fenced ``node``'s claims: its fencer (the ``by`` of its fence record), or the
    lowest-named live node when the fencer is gone or there was none (the unfenced grace). One breaker, because a
    break that races with another break and a new claim can hand one group to two claimants on a shared
    directory."""
    by = (records.get(node) or {}).get("by")
    return by if isinstance(by, str) and by in alive else min(alive)


class Failed(NamedTuple):
    """A group's test failed on this node at ``since`` (clock seconds), for ``reason``."""

    since: float
    reason: str


def expire_failed(
    failed: Mapping[str, Failed], now: float, retry: float
) -> tuple[dict[str, Failed], dict[str, Failed]]:
    """Split this node's failed tests into those still remembered and those older than ``retry`` seconds at
    ``now``, after which this node is a candidate for the group again (both keep ``failed``'s order)."""
    kept = {g: f for g, f in failed.items() if not now - f.since > retry}
    expired = {g: f for g, f in failed.items() if now - f.since > retry}
    return kept, expired


def settling(now: float, started: float, settle: float) -> bool:
    """Within ``settle`` seconds of ``started``: this node has not heard from the others for long enough, and
    starts nothing, so that starts spread over the nodes instead of piling on the first one up."""
    return now - started < settle


def waiting_since(waiting: Mapping[str, float], view: View, now: float) -> dict[str, float]:
    """Since when (clock seconds) each wanted group has been running nowhere, given the previous cycle's
    ``waiting`` and this cycle's ``view`` (with the claims as this cycle's actions left them).

    A group running on a live node, or claimed, waits no more; a group no longer wanted is dropped. Nothing
    waits while settling, or every node would fall back to the next best at once when settling ends."""
    if view.settling:
        return {}
    out = dict(waiting)
    running = {g for n in view.nodes.values() if n.alive for g, inst in n.groups.items() if inst.active}
    for group in view.wanted:
        if group in running or group in view.claims:
            out.pop(group, None)
        else:
            out.setdefault(group, now)
    return {g: t for g, t in out.items() if g in view.wanted}


@dataclass(frozen=True)
class Moves:
    """What :func:`track_moves` found: the new tracking state, and the groups that arrived here this cycle."""

    #: wanted groups at their level (DONE or PASSED) on this node
    at_level: frozenset[str]
    #: group -> the node last seen holding it active at its wanted level
    seen_holder: Mapping[str, str]
    #: (group, node it was last seen on before or None, level), in hactl's order
    arrived: tuple[tuple[str, str | None, str], ...]


def track_moves(view: View, at_level: Set[str], seen_holder: Mapping[str, str]) -> Moves:
    """Which wanted groups reached their level on this node since the last cycle (``at_level``), and where each
    was last seen running before (``seen_holder``), for the group-moved notifications."""
    here: set[str] = set(at_level)
    seen = dict(seen_holder)
    arrived: list[tuple[str, str | None, str]] = []
    me = view.nodes[view.me]
    for group, want in view.wanted.items():
        inst = me.groups.get(group)
        at = bool(inst and inst.level == want and inst.state in (DONE, PASSED))
        if at and group not in here:
            here.add(group)
            arrived.append((group, seen.get(group), want))
        elif not at:
            here.discard(group)
    for name, node in view.nodes.items():  # the last node (in the view's order) holding it at level wins
        for group, g in node.groups.items():
            if g.active and group in view.wanted and g.level == view.wanted[group]:
                seen[group] = name
    return Moves(frozenset(here), seen, tuple(arrived))
