"""Observing the other nodes: one read of the cluster, their statuses, who is alive, who was lost holding groups,
and how each node shows in status.

A node is alive while its published ``seq`` keeps changing on this node's own monotonic clock
(:class:`~omha_core.liveness.Liveness`), unless the membership layer's view is proof of life (etcd's leases). A
status that cannot be used is ignored, with its problem kept for status; it never crashes the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from omha_core import hooks
from omha_core.backends import Membership, Store
from omha_core.liveness import Liveness
from omha_core.rules import lost_holding_groups
from omha_core.status import NodeStatus, StatusProblem, parse_status

log = logging.getLogger("omha.daemon")


@dataclass(frozen=True)
class Reading:
    """Everything one cycle reads from the store and the membership layer."""

    #: node -> its raw published status (or the error reading it)
    statuses: dict[str, Any]
    #: group -> its claim (``node``, ``incarnation``)
    claims: dict[str, Mapping[str, Any]]
    #: node -> its fence record
    records: dict[str, Mapping[str, Any]]
    #: the nodes the membership layer sees up, or None when it has no view of its own
    up: set[str] | None
    #: this node is a member (holds its lease)
    member: bool


class Peers:
    """What this node knows of the others: their last usable status, problems with the rest, and liveness.

    :param me: this node's name (its own status is never observed: it knows better).
    :param isolate_after: a peer silent for longer is out of contact by its own rule (see :meth:`fresh`).
    """

    def __init__(
        self,
        me: str,
        store: Store,
        membership: Membership,
        pm: pluggy.PluginManager,
        dead_after: float,
        isolate_after: float,
        clock: Callable[[], float],
    ) -> None:
        self.me, self.store, self.membership, self.pm = me, store, membership, pm
        self.isolate_after = isolate_after
        self.liveness = Liveness(dead_after, clock)
        self.statuses: dict[str, NodeStatus] = {}
        #: node -> why its status was ignored
        self.problems: dict[str, str] = {}
        #: (node, incarnation) already reported lost while holding groups
        self.reported_lost: set[tuple[str, str]] = set()

    def read(self) -> Reading:
        """Everything a cycle reads from the store and membership (in a worker thread).

        The members are read before the claims: a node stopping cleanly releases its claims before it leaves,
        so one seen gone here holds no claim read after, and is not mistaken for lost while holding a group
        (and fenced) when it stops between the two reads."""
        up = self.membership.up_nodes()
        member = self.membership.is_member()
        return Reading(self.store.statuses(), self.store.claims(), self.store.fence_records(), up, member)

    def beat_and_read(self) -> Reading:
        """This node's heartbeat, then :meth:`read`, both in one worker thread: a hand-off costs ~0.1 ms of CPU,
        and an idle daemon's whole cycle only ~5 ms (issue 19)."""
        self.membership.heartbeat()
        return self.read()

    def observe(self, raw: Mapping[str, Any]) -> None:
        """Take in the others' published statuses: usable ones feed liveness, the rest are ignored and noted."""
        for node, doc in raw.items():
            if node == self.me:
                continue
            parsed = parse_status(node, doc, self.statuses.get(node))
            if isinstance(parsed, StatusProblem):
                if self.problems.get(node) != parsed.message:
                    log.warning("ignoring status of %s: %s", node, parsed.message)
                self.problems[node] = parsed.message
                continue
            self.problems.pop(node, None)
            self.statuses[node] = parsed
            self.liveness.observe(node, parsed.incarnation, parsed.seq)

    def alive(self, up: set[str] | None) -> set[str]:
        """This node and every peer alive (:meth:`is_alive`)."""
        return {self.me} | {n for n in self.statuses if n != self.me and self.is_alive(n, up)}

    def is_alive(self, node: str, up: set[str] | None) -> bool:
        """Is ``node`` alive? Heartbeats decide, unless the membership layer's view is proof of life."""
        if up is not None and self.membership.authoritative:
            return node in up
        return self.liveness.alive(node) and (up is None or node in up)

    def fresh(self, alive: set[str], up: set[str] | None) -> set[str] | None:
        """The nodes of ``alive`` heard from within ``isolate_after``: the ones that may vote for fencing a node
        and taking its groups over; None when the membership layer's view decides instead.

        A node whose view of the store stopped changing (a stale copy, a cache, its own writes landing apart from
        the others') sees every peer go silent at once, but not lost at once: the first is lost ``dead_after``
        after its last heartbeat, while the rest still count as alive for up to a heartbeat more. Counted that
        way, the node would have quorum for that moment and fence a healthy peer (the fault campaign found it,
        with one node's shared directory full). A peer silent for more than ``isolate_after`` is, by this
        node's own rule, out of contact and stopping its groups: it does not vote for a fence. A membership
        layer that is read from a quorum of its own (etcd) cannot be stale that way, and its view decides."""
        if up is not None and self.membership.authoritative:
            return None
        return {self.me} | {
            n for n in alive if n != self.me and (self.liveness.silent_for(n) or 0.0) < self.isolate_after
        }

    def lost_holding_groups(self, alive: set[str], holders: Mapping[str, str]) -> dict[str, str]:
        """The lost nodes that held groups, with the incarnation lost (:func:`~omha_core.rules.lost_holding_groups`);
        each lost incarnation is logged and notified (``omha_node_lost``) once."""
        lost = lost_holding_groups(self.statuses, alive, holders)
        for node, found in lost.items():
            key = (node, found.incarnation)
            if key not in self.reported_lost:
                self.reported_lost.add(key)
                log.warning("node %s lost while holding %s", node, ", ".join(found.groups))
                hooks.notify_node_lost(self.pm, node=node, observer=self.me, groups=list(found.groups))
        return {node: found.incarnation for node, found in lost.items()}

    def states(self, alive: set[str], fencing: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """Every node known, as status shows it: up, lost, stopped or its fencing state (``fencing``: the
        fencer's state per node), seconds silent, and why its status was ignored."""
        out: dict[str, Any] = {}
        for name in sorted({self.me, *self.statuses, *self.problems}):
            silent = 0.0 if name == self.me else self.liveness.silent_for(name)
            state = "up" if name in alive else "lost"
            fence = fencing.get(name)
            if name not in alive and fence:
                state = str(fence.get("state", state))
            elif name not in alive and self.statuses.get(name) and self.statuses[name].shutting_down:
                state = "stopped"
            out[name] = {"state": state, "silent": None if silent is None else round(silent, 1)}
            if fence and name not in alive:
                out[name]["fencing"] = fence
            if name in self.problems:
                out[name]["problem"] = self.problems[name]
        return out
