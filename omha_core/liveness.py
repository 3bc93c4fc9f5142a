"""Who is alive: judged by each node's published sequence number changing, on this node's monotonic clock.

The original compared file modification times with the local clock, which breaks under clock skew. Here a node
is alive while the ``(incarnation, seq)`` pair it publishes keeps changing: the observer notes, on its own
monotonic clock, when it last saw a change, and declares the node lost after ``dead_after`` seconds without one.
A node first seen counts from that moment, so a stale status left by a node that is down is lost
``dead_after`` seconds after this daemon starts, never alive forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Seen:
    token: tuple[str, int]
    changed: float


class Liveness:
    """Tracks heartbeats of every node this daemon has seen."""

    def __init__(self, dead_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.dead_after = dead_after
        self.clock = clock
        self._seen: dict[str, _Seen] = {}

    def observe(self, node: str, incarnation: str, seq: int) -> None:
        """Record what ``node`` published now."""
        token = (incarnation, seq)
        seen = self._seen.get(node)
        if seen is None or seen.token != token:
            self._seen[node] = _Seen(token, self.clock())

    def alive(self, node: str) -> bool:
        """True while ``node`` heartbeats."""
        seen = self._seen.get(node)
        return seen is not None and self.clock() - seen.changed < self.dead_after

    def next_deadline(self) -> float | None:
        """When (on the clock) the first node still alive will be lost if nothing changes; None if none is alive.

        The daemon wakes then, so a lost node is noticed at its deadline, not up to a heartbeat later."""
        now = self.clock()
        ends = [s.changed + self.dead_after for s in self._seen.values() if now - s.changed < self.dead_after]
        return min(ends) if ends else None

    def silent_for(self, node: str) -> float | None:
        """Seconds since ``node``'s status last changed, or None if never seen."""
        seen = self._seen.get(node)
        return None if seen is None else self.clock() - seen.changed

    def forget(self, node: str) -> None:
        """Drop a node that no longer publishes anything."""
        self._seen.pop(node, None)

    @property
    def nodes(self) -> list[str]:
        return sorted(self._seen)
