"""A group as one node runs it: its level and its state. One type for the local init, :func:`decide` and status.

The init (:mod:`omha_core.init`) sets a group's ``level`` (the runlevel last told: ``plan``, ``test``, ``run``,
``stop``... or None when never told) and its ``state``, one of :data:`GROUP_STATES`. What follows from the two,
whether the group may hold resources on that node, is decided here once; the decision loop, the published
status read back from other nodes and ``omha status`` all ask :attr:`GroupState.active`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omha_core.hactl import STOP_LEVEL

CONFIGURED, STARTING, STOPPING = "CONFIGURED", "STARTING", "STOPPING"
DONE, PASSED, FAILED = "DONE", "PASSED", "FAILED"
#: every state a group can be in: CONFIGURED (never told), a transition under way, or how the last one ended
GROUP_STATES = (CONFIGURED, STARTING, STOPPING, DONE, PASSED, FAILED)
#: the states of a transition under way
TRANSITIONS = (STARTING, STOPPING)


@dataclass(frozen=True)
class GroupState:
    """A group as one node reports it: its current level and state.

    ``active`` and ``stopping_or_stuck`` are computed once, at construction: the decision loop asks them hundreds
    of times a cycle (every group of every node, in :func:`decide` and :mod:`omha_core.rules`)."""

    level: str | None
    state: str
    #: True while the group holds (or is taking, or releasing) resources on that node
    active: bool = field(init=False, repr=False, compare=False)
    #: its stop is under way or FAILED: its resources may still be held
    stopping_or_stuck: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        stuck = self.state in (STOPPING, FAILED)
        object.__setattr__(self, "stopping_or_stuck", stuck)
        # never told (None) or told to stop: active only while the stop is under way or failed
        object.__setattr__(self, "active", stuck if self.level is None or self.level == STOP_LEVEL else True)

    @classmethod
    def read(cls, doc: Any) -> GroupState | None:
        """The group of a published status (``{"level": ..., "state": ..., ...}``), or None when ``doc`` has no
        string ``state``: another node's document is untrusted input. Equal groups share one instance
        (:meth:`of`): a cluster's statuses hold a handful of distinct level/state pairs, read every cycle."""
        if not isinstance(doc, Mapping) or not isinstance(state := doc.get("state"), str):
            return None
        level = doc.get("level")
        return cls.of(level if isinstance(level, str) else None, state)

    @classmethod
    def of(cls, level: str | None, state: str) -> GroupState:
        """``GroupState(level, state)``, shared with every other caller asking for the same pair."""
        if (known := _SHARED.get((level, state))) is not None:
            return known
        made = cls(level, state)
        if len(_SHARED) < _SHARED_MAX:  # bounded: level and state strings come from other nodes' documents
            _SHARED[(level, state)] = made
        return made


#: the instances :meth:`GroupState.of` shares, by (level, state)
_SHARED: dict[tuple[str | None, str], GroupState] = {}
_SHARED_MAX = 4096
