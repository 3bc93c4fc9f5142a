"""Reading other nodes' status documents: anything at all becomes a NodeStatus or a StatusProblem."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omha_core.status import NodeStatus, StatusProblem, parse_status
from omha_core.uniqueness import impostor

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_good_status() -> None:
    doc = {
        "node": "n2",
        "incarnation": "abc",
        "seq": 7,
        "groups": {"web": {"level": "run", "state": "DONE"}, "junk": 5, "db": {"state": "STOPPING", "level": 3}},
        "unfit": {"db": "maintenance"},
        "quorum": False,
    }
    st_ = parse_status("n2", doc)
    assert isinstance(st_, NodeStatus)
    assert st_.groups["web"].active and st_.groups["web"].level == "run"
    assert st_.groups["db"].level is None  # a non-string level is not trusted
    assert "junk" not in st_.groups and st_.unfit == {"db": "maintenance"} and st_.quorum is False


def test_status_naming_another_node_is_refused() -> None:
    assert isinstance(parse_status("n2", {"node": "n3", "incarnation": "a", "seq": 1}), StatusProblem)
    assert isinstance(parse_status("n2", {"incarnation": "a", "seq": True}), StatusProblem)


@given(JSON)
def test_any_json_is_handled(doc: Any) -> None:
    result = parse_status("n1", doc)
    assert isinstance(result, NodeStatus | StatusProblem)


def test_a_status_whose_groups_did_not_change_keeps_the_parsed_groups_and_one_that_did_is_read_again() -> None:
    doc: dict[str, Any] = {"incarnation": "a", "seq": 1, "groups": {"web": {"level": "run", "state": "DONE"}}}
    first = parse_status("n2", doc)
    assert isinstance(first, NodeStatus)
    same = parse_status("n2", {**doc, "seq": 2, "groups": {"web": {"level": "run", "state": "DONE"}}}, first)
    assert isinstance(same, NodeStatus) and same.seq == 2 and same.groups is first.groups
    stopping = {"web": {"level": "stop", "state": "FAILED"}, "db": {"level": "run", "state": "STARTING"}}
    changed = parse_status("n2", {**doc, "seq": 3, "groups": stopping}, same)
    assert isinstance(changed, NodeStatus)
    assert changed.groups["web"].level == "stop" and changed.groups["web"].stopping_or_stuck
    assert changed.groups["db"].state == "STARTING" and changed.groups["db"].active
    gone = parse_status("n2", {**doc, "seq": 4, "groups": "garbage"}, changed)
    assert isinstance(gone, NodeStatus) and gone.groups == {}


@pytest.mark.parametrize(
    ("doc", "found"),
    [
        (None, False),  # nothing published yet
        ({"incarnation": "mine", "seq": 3}, False),  # our own
        ({"incarnation": "before", "seq": 9}, False),  # the dead predecessor found at start-up
        ({"incarnation": "other", "seq": 1, "pid": 42}, True),  # a second daemon under our name
        ({"incarnation": ["mine"], "seq": 1}, False),  # garbage is no proof of another daemon
        ("garbage", False),
    ],
)
def test_a_status_under_our_name_from_another_incarnation_is_an_impostor(doc: Any, found: bool) -> None:
    message = impostor({"n1": doc} if doc is not None else {}, "n1", {"mine", "before"})
    assert (message is not None) is found, message
    if found:
        assert message is not None and "incarnation other, pid 42" in message
