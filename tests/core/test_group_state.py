"""One group state type (:mod:`omha_core.group_state`) for the local init, the decision and the statuses read back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from omha_core import decide, init
from omha_core.group_state import CONFIGURED, DONE, FAILED, PASSED, STARTING, STOPPING, GroupState
from omha_core.status import NodeStatus, parse_status


@pytest.mark.parametrize(
    ("level", "state", "active"),
    [
        (None, CONFIGURED, False),  # never told
        ("stop", DONE, False),  # stopped
        ("stop", STOPPING, True),  # still releasing its resources
        ("stop", FAILED, True),  # its stop failed: the resources may still be held
        (None, FAILED, True),
        ("plan", STARTING, True),
        ("test", PASSED, True),
        ("run", DONE, True),
        ("run", FAILED, True),  # a failed start may have taken some of them
    ],
)
def test_active_is_whether_the_group_may_hold_resources(level: str | None, state: str, active: bool) -> None:
    assert GroupState(level, state).active is active
    # computed at construction: the shared instances and a replaced copy agree
    assert GroupState.of(level, state).active is active and GroupState.of(level, state) is GroupState.of(level, state)
    assert dataclasses.replace(GroupState("run", DONE), level=level, state=state).active is active


@pytest.mark.parametrize(
    ("doc", "read"),
    [
        ({"level": "run", "state": "DONE", "since": 1.0, "entries": {}}, GroupState("run", DONE)),
        ({"level": 7, "state": "STOPPING"}, GroupState(None, STOPPING)),  # a level that is not a string: none
        ({"level": "run"}, None),
        ({"level": "run", "state": 3}, None),
        ("run", None),
        (None, None),
    ],
)
def test_a_published_group_is_read_tolerantly(doc: Any, read: GroupState | None) -> None:
    assert GroupState.read(doc) == read


def test_the_init_the_decision_and_the_statuses_share_it() -> None:
    assert decide.Instance is GroupState
    assert (init.DONE, init.FAILED, init.STOPPING) == (decide.DONE, decide.FAILED, decide.STOPPING) == (
        DONE,
        FAILED,
        STOPPING,
    )
    doc = {"incarnation": "i", "seq": 1, "groups": {"web": {"level": "stop", "state": "FAILED"}, "db": "junk"}}
    status = parse_status("n1", doc)
    assert isinstance(status, NodeStatus)
    assert status.groups == {"web": GroupState("stop", FAILED)} and status.groups["web"].active
