"""Which node should start a group that runs nowhere: the candidates in :func:`rank_key` order.

Fewest groups first (the claims, plus what this cycle assigned so far), then a per-group hash of the node's
name, so that starts spread over the nodes and every node computes the same order without talking. The best
candidate claims at once; the n-th best claims after waiting n times ``spread_delay``.

At 100 nodes x 1,000 groups, ranking was most of :func:`omha_core.decide.decide`'s time. Two shortcuts give
exactly the order of sorting every candidate by :func:`rank_key`: only the nodes whose load ties with the best's
or with this node's are hashed, and :class:`Loads` keeps the eligible nodes bucketed by load, so that ranking a
group among all of them (the usual case: no node vetoed it) does not look at each one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping


def rank_key(group: str, node: str, load: int) -> tuple[int, str]:
    """The order in which nodes are candidates for ``group``: fewest groups first, then a per-group hash."""
    return (load, hashlib.sha256(f"{group}\0{node}".encode()).hexdigest())


def _digests(group: str) -> Callable[[str], bytes]:
    """``node -> sha256(group \\0 node)``, memoised; the ``group\\0`` prefix is hashed once. Raw digests compare in
    the same order as the hex spelling :func:`rank_key` uses."""
    base = hashlib.sha256(f"{group}\0".encode())
    digests: dict[str, bytes] = {}

    def digest(node: str) -> bytes:
        if node not in digests:
            h = base.copy()
            h.update(node.encode())
            digests[node] = h.digest()
        return digests[node]

    return digest


class Loads:
    """Groups per live node as one :func:`~omha_core.decide.decide` call assigns them, with the ``eligible``
    nodes (the candidates for a group no node vetoed) also kept in buckets by load.

    :param counts: node -> the groups it holds a claim to; updated in place by :meth:`add`.
    """

    def __init__(self, counts: dict[str, int], eligible: Iterable[str]) -> None:
        self.counts = counts
        self.eligible = frozenset(eligible)
        self._buckets: dict[int, set[str]] = {}
        for node in self.eligible:
            self._buckets.setdefault(counts.get(node, 0), set()).add(node)

    def add(self, node: str) -> None:
        """``node`` takes one more group."""
        was = self.counts.get(node, 0)
        self.counts[node] = was + 1
        if node in self.eligible:
            bucket = self._buckets[was]
            bucket.discard(node)
            if not bucket:
                del self._buckets[was]
            self._buckets.setdefault(was + 1, set()).add(node)

    def rank_eligible(self, group: str, me: str) -> tuple[str, int | None]:
        """The best eligible node for ``group`` (there must be one) and this node's place among them (None when
        not one), in :func:`rank_key` order, from the buckets: only the nodes whose load ties with the best's or
        with this node's are hashed."""
        digest = _digests(group)
        tied = self._buckets[min(self._buckets)]
        best = next(iter(tied)) if len(tied) == 1 else min(tied, key=digest)
        if me not in self.eligible:
            return best, None
        mine = self.counts.get(me, 0)
        ahead = sum(len(nodes) for load, nodes in self._buckets.items() if load < mine)
        if len(equal := self._buckets[mine]) > 1:
            own = digest(me)
            ahead += sum(1 for n in equal if n != me and digest(n) < own)
        return best, ahead


def rank(group: str, candidates: list[str], load: Mapping[str, int], me: str) -> tuple[str, int | None]:
    """The best of ``candidates`` for ``group`` and this node's place among them (None when not one), in
    :func:`rank_key` order (a node missing from ``load`` carries no group): for a group some nodes are left out
    of, where :meth:`Loads.rank_eligible` does not apply."""
    return Loads({n: load.get(n, 0) for n in candidates}, candidates).rank_eligible(group, me)
