"""Heartbeat liveness on a monotonic clock, and the three quorum policies."""

from __future__ import annotations

from pathlib import Path

from omha_core.liveness import Liveness
from omha_core.quorum import Quorum


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_alive_while_seq_changes_lost_after_dead_after() -> None:
    clock = Clock()
    live = Liveness(2.0, clock)
    live.observe("n2", "inc1", 1)
    assert live.alive("n2")
    clock.t += 1.5
    live.observe("n2", "inc1", 2)
    clock.t += 1.5
    assert live.alive("n2")  # changed 1.5 s ago
    live.observe("n2", "inc1", 2)  # same seq again: no heartbeat
    clock.t += 0.6
    assert not live.alive("n2")
    # a restart publishes a new incarnation, possibly with a lower seq: alive again
    live.observe("n2", "inc2", 0)
    assert live.alive("n2")
    assert not live.alive("never-seen")


def test_stale_status_of_a_down_node_is_lost_after_dead_after() -> None:
    clock = Clock()
    live = Liveness(2.0, clock)
    live.observe("old", "inc", 77)
    clock.t += 2.1
    live.observe("old", "inc", 77)
    assert not live.alive("old")


def test_majority_remembers_the_largest_membership(tmp_path: Path) -> None:
    state = str(tmp_path / "quorum.json")
    q = Quorum({"policy": "majority"}, state)
    assert q.update(1)  # a node alone at first boot is a one-node cluster
    assert q.update(3)
    assert q.update(2)
    assert not q.update(1)
    # restarted alone, it still remembers three
    assert not Quorum({"policy": "majority"}, state).update(1)
    assert Quorum({"policy": "majority", "expected": 1}, None).update(1)


def test_ratio_is_the_original_rule() -> None:
    q = Quorum({"policy": "ratio", "ratio": 0.6})
    assert q.update(5)
    assert q.update(3)  # 3 >= 0.6 * 5
    assert not q.update(1)  # 1 < 0.6 * 3
    assert q.update(2)  # 2 >= 0.6 * 3


def test_ignore() -> None:
    assert Quorum({"policy": "ignore", "expected": 9}).update(1)
