"""The daemon wakes when the first live node's silence reaches ``dead_after`` (Liveness.next_deadline)."""

from __future__ import annotations

from omha_core.liveness import Liveness


def test_the_next_deadline_is_the_earliest_live_nodes_and_ignores_the_lost() -> None:
    now = [100.0]
    live = Liveness(2.0, clock=lambda: now[0])
    assert live.next_deadline() is None
    live.observe("n1", "i1", 1)
    now[0] = 100.5
    live.observe("n2", "i2", 1)
    assert live.next_deadline() == 102.0
    now[0] = 101.0
    live.observe("n1", "i1", 2)  # n1 beat again: n2 is now the first to go silent
    assert live.next_deadline() == 102.5
    now[0] = 102.6  # n2 is lost: it no longer sets a deadline
    assert not live.alive("n2")
    assert live.next_deadline() == 103.0
    now[0] = 103.0
    assert live.next_deadline() is None
