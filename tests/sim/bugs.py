"""Bugs deliberately put into the real code, one at a time, to prove the simulation catches them.

Each is a context manager that patches the real daemon, fencer or quorum code and restores it on exit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from omha_core.decide import Action
from omha_core.fencing import Fencer
from omha_core.node import Daemon
from omha_core.node.publish import StatusWriter
from omha_core.quorum import Quorum


@contextlib.contextmanager
def skip_the_claim() -> Iterator[None]:
    """The daemon acts as if every claim it decides to take were granted, without asking the store."""
    real = Daemon._act

    async def act(self: Daemon, actions: list[Action], holders: dict[str, str]) -> None:
        for action in actions:
            if action.kind == "claim":
                holders[action.group] = self.node
        await real(self, [a for a in actions if a.kind != "claim"], holders)

    Daemon._act = act  # type: ignore[method-assign]
    try:
        yield
    finally:
        Daemon._act = real  # type: ignore[method-assign]


@contextlib.contextmanager
def break_claims_before_the_fence() -> Iterator[None]:
    """Every lost node that held groups counts as fenced at once: its claims are broken before any fencing."""
    real = Fencer.step

    def step(
        self: Fencer, lost: Mapping[str, str], alive: set[str], records: Mapping[str, Mapping[str, Any]], quorum: bool
    ) -> set[str]:
        real(self, lost, alive, records, quorum)
        return set(lost)

    Fencer.step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        Fencer.step = real  # type: ignore[method-assign]


@contextlib.contextmanager
def ignore_quorum() -> Iterator[None]:
    """Every partition believes it has quorum."""
    real = Quorum.update

    def update(self: Quorum, alive: int, peer_fenceable: bool = False) -> bool:
        real(self, alive, peer_fenceable)
        return True

    Quorum.update = update  # type: ignore[method-assign]
    try:
        yield
    finally:
        Quorum.update = real  # type: ignore[method-assign]


@contextlib.contextmanager
def publish_out_of_order() -> Iterator[None]:
    """Status writes go straight to the store, not one at a time: a write still in flight when the shutdown
    publishes the final status may land after it (the fault campaign's seed 1823, found in a real run)."""
    real = StatusWriter.write

    def write(self: StatusWriter, doc: Mapping[str, Any]) -> None:
        self.store.publish(self.node, doc)

    StatusWriter.write = write  # type: ignore[method-assign]
    try:
        yield
    finally:
        StatusWriter.write = real  # type: ignore[method-assign]


#: what each bug must be caught as: the violations (substrings of the message) it leads to. Any other violation
#: (a group not back within the bound, say) does not count as catching it.
CAUGHT_AS = {
    "skip-the-claim": ("while held on",),
    "break-claims-before-the-fence": ("never fenced", "while held on"),
    "ignore-quorum": ("minority side", "while held on", "never fenced"),
    "publish-out-of-order": ("stopped cleanly",),
}

BUGS = {
    "skip-the-claim": skip_the_claim,
    "break-claims-before-the-fence": break_claims_before_the_fence,
    "ignore-quorum": ignore_quorum,
    "publish-out-of-order": publish_out_of_order,
}
