"""A group as one node runs it: its level and its state. One type for the local init, :func:`decide` and status.

The init (:mod:`omha_core.init`) sets a group's ``level`` (the runlevel last told: ``plan``, ``test``, ``run``,
``stop``... or None when never told) and its ``state``, one of :data:`GROUP_STATES`. What follows from the two,
whether the group may hold resources on that node, is decided here once; the decision loop, the published
status read back from other nodes and ``omha status`` all ask :attr:`GroupState.active`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    """A group as one node reports it: its current level and state."""

    level: str | None
    state: str

    @property
    def active(self) -> bool:
        """True while the group holds (or is taking, or releasing) resources on that node."""
        if self.level is None or self.level == STOP_LEVEL:  # never told (None), or told to stop
            return self.stopping_or_stuck
        return True

    @property
    def stopping_or_stuck(self) -> bool:
        """Its stop is under way or FAILED: its resources may still be held."""
        return self.state in (STOPPING, FAILED)

    @classmethod
    def read(cls, doc: Any) -> GroupState | None:
        """The group of a published status (``{"level": ..., "state": ..., ...}``), or None when ``doc`` has no
        string ``state``: another node's document is untrusted input."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("state"), str):
            return None
        level = doc.get("level")
        return cls(level if isinstance(level, str) else None, doc["state"])
