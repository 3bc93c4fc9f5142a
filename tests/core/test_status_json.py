"""The published status's encoding (issue 19: an idle daemon's CPU) and the shared directory not re-reading the
status file it just wrote, while still reading one that another daemon wrote as the same node."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.config import validate_config
from omha_core.fsutil import atomic_write
from omha_core.status_json import StatusEncoder


def reference(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def status(seq: int, state: str = "running") -> dict[str, Any]:
    entries = {f"t{j}": {"pid": 100 + j, "state": state, "exit": None} for j in range(3)}
    return {
        "node": "n1",
        "seq": seq,
        "time": 1.5 * seq,
        "groups": {f"g{i}": {"level": "1", "state": "DONE", "entries": entries} for i in range(4)},
        "view": {"why": {"g0": "here"}},
        "config": {"cltab": None},
    }


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"groups": {}},
        {"groups": {"b": 1, "a": [1, 2]}},
        {"a": 1, "groups": {"x": {"y": None}}},
        {"groups": {"x": 1.5}, "z": "é\n"},
        {"a": True, "z": 2, "groups": {"y": {"e": {"t": None}}, "x": 2}},
        {"groups": {1: "non-string key"}},
        {"groups": "not a mapping"},
        {"a": {"b": [1, {"c": 2}]}},
    ],
)
def test_encoding_equals_json_dumps_compact_sorted(doc: dict[str, Any]) -> None:
    encoder = StatusEncoder()
    assert encoder.encode(doc) == reference(doc)
    assert encoder.encode(doc) == reference(doc)  # second time through the cache
    assert json.loads(encoder.encode(doc)) == json.loads(json.dumps(doc))


def test_a_changed_group_is_encoded_again_and_a_gone_group_disappears() -> None:
    encoder = StatusEncoder()
    doc = status(1)
    assert encoder.encode(doc) == reference(doc)
    changed = status(2)
    changed["groups"]["g2"] = {**changed["groups"]["g2"], "state": "FAILED"}
    changed["groups"]["g1"]["entries"] = {"t0": {"pid": 7, "state": "stopped", "exit": 1}}
    del changed["groups"]["g3"]
    changed["groups"]["g9"] = {"level": None}
    assert encoder.encode(changed) == reference(changed)
    again = status(3)  # back to the first groups: g1, g2 and g3 must not come from the changed cycle's cache
    assert encoder.encode(again) == reference(again)


def test_a_group_status_changed_in_place_is_encoded_again() -> None:
    encoder = StatusEncoder()
    doc = status(1)
    encoder.encode(doc)
    doc["groups"]["g0"]["state"] = "FAILED"  # the very dict the cache holds
    assert encoder.encode(doc) == reference(doc)


def store(tmp_path: Path) -> SharedDirStore:
    (tmp_path / "shared").mkdir(exist_ok=True)
    s = SharedDirStore(validate_config({"node": "n1", "sharedfs": {"path": str(tmp_path / "shared")}}))
    s.open()
    return s


def test_published_status_is_compact_json_and_read_back(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.publish("n1", status(1))
    text = (tmp_path / "shared" / "nodes" / "n1" / "status.json").read_text()
    assert text == reference(status(1)) + "\n"
    assert s.statuses() == {"n1": status(1)}
    s.publish("n1", status(2, "FAILED"))
    assert s.statuses() == {"n1": status(2, "FAILED")}
    assert store(tmp_path).statuses() == {"n1": status(2, "FAILED")}  # another node reads the file itself


def test_another_writer_of_the_same_node_is_read_not_the_remembered_document(tmp_path: Path) -> None:
    """The daemon's impostor check depends on seeing a second daemon's status for its own node."""
    mine, impostor = store(tmp_path), store(tmp_path)
    mine.publish("n1", status(1))
    impostor.publish("n1", {**status(1), "incarnation": "other"})
    assert mine.statuses()["n1"]["incarnation"] == "other"
    mine.publish("n1", status(2))
    path = tmp_path / "shared" / "nodes" / "n1" / "status.json"
    atomic_write(str(path), json.dumps({**status(2), "pid": 4242}))  # same seq, written by someone else
    assert mine.statuses()["n1"]["pid"] == 4242
    path.write_text("{not json")  # rewritten in place: the size changes, so it is read (and found broken)
    assert isinstance(mine.statuses()["n1"], Exception)
