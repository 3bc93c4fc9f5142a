"""The node daemon's plain data: the timing it runs by, and what its decisions carry from one cycle to the next.

Kept apart from :mod:`omha_core.node.daemon` so that the loop reads without them; :mod:`omha_core.rules` computes
every new value of :class:`Memory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omha_core.rules import Failed


@dataclass(frozen=True)
class Timing:
    """The ``[timing]`` settings the loop runs by (seconds)."""

    heartbeat: float
    dead_after: float
    #: nothing starts this long after start-up (default ``dead_after``)
    settle: float
    #: every local group stops after this long without a complete cycle (default ``dead_after / 2``)
    isolate_after: float
    #: how long a failed test keeps this node out of the running for a group (unless cltab/hactl change)
    failed_retry: float

    @classmethod
    def from_config(cls, timing: Mapping[str, Any]) -> Timing:
        dead_after = float(timing.get("dead_after", 2.0))
        settle, isolate = timing.get("settle"), timing.get("isolate_after")
        return cls(
            heartbeat=float(timing.get("heartbeat", 0.5)),
            dead_after=dead_after,
            settle=float(dead_after if settle is None else settle),
            isolate_after=float(dead_after / 2 if isolate is None else isolate),
            failed_retry=float(timing["failed_retry"]),
        )


@dataclass
class Memory:
    """What the decisions carry from one cycle to the next; :mod:`omha_core.rules` computes each new value."""

    #: clock time from which this node settles (:func:`~omha_core.rules.settling`)
    started: float
    #: group -> its failed test here (published; forgotten after ``failed_retry``, or when cltab/hactl change)
    failed: dict[str, Failed] = field(default_factory=dict)
    #: group -> since when it has been wanted and running nowhere
    waiting: dict[str, float] = field(default_factory=dict)
    #: wanted groups at their level here, and who held each last, for group-moved notifications
    at_level: frozenset[str] = frozenset()
    seen_holder: dict[str, str] = field(default_factory=dict)
