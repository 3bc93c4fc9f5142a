"""``getlatest``: the newest valid copy of cltab/hactl among the up nodes is adopted; an invalid one never."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from omha_membership_openmosix.store import OpenMosixStore
from omha_testing.mosix import FakeMosix

from omha_core.backends import Versioned
from omha_core.cltab import parse_cltab
from omha_core.errors import ConflictError, ParseError, StoreError
from omha_core.hactl import parse_hactl

CLTAB_V1 = "web:ip:start:respawn:sleep 100\n"
CLTAB_V2 = "web:ip:start:respawn:sleep 100\ndb:d:start:respawn:sleep 200\n"
CLTAB_BAD = "web:ip:start:respawn:sleep 100\nthis line has no fields\n"
HACTL_V1 = "web start\n"
HACTL_BAD = "web st/art\n"  # "/" may not be in a level (extra words, as in the original, are only a warning)

VALIDATORS: dict[str, Callable[[str, str], Any]] = {"cltab": parse_cltab, "hactl": parse_hactl}


def store(mosix: FakeMosix, node: int) -> OpenMosixStore:
    s = OpenMosixStore(mosix.config(node))
    s.open()
    return s


def getlatest(s: OpenMosixStore, name: str) -> Versioned | None:
    """What the core does each cycle: adopt the first candidate its real validator accepts."""
    for doc in s.documents(name):
        try:
            VALIDATORS[name](doc.text, doc.origin)
        except ParseError:
            continue
        s.adopt(name, doc)
        return doc
    return None


def local_text(mosix: FakeMosix, node: int, name: str) -> str | None:
    path = mosix.node_dir(node) / name
    return path.read_text() if path.exists() else None


def test_newest_copy_is_adopted_and_replicated(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "cltab", CLTAB_V1, version=(1, 1))
    mosix.put_copy(2, "cltab", CLTAB_V2, version=(2, 2))
    s3 = store(mosix, 3)
    docs = s3.documents("cltab")
    assert [(d.text, d.order) for d in docs] == [(CLTAB_V2, 2), (CLTAB_V1, 1)]
    adopted = getlatest(s3, "cltab")
    assert adopted is not None and adopted.text == CLTAB_V2
    assert local_text(mosix, 3, "cltab") == CLTAB_V2
    assert mosix.read_json(3, "cltab.version")["counter"] == 2
    # node 3's copy is the same version: every node now sees one candidate at the top
    assert [d.version for d in store(mosix, 1).documents("cltab")] == [docs[0].version, docs[1].version]
    assert getlatest(store(mosix, 1), "cltab") == adopted
    assert local_text(mosix, 1, "cltab") == CLTAB_V2


@pytest.mark.parametrize(("name", "good", "bad"), [("cltab", CLTAB_V1, CLTAB_BAD), ("hactl", HACTL_V1, HACTL_BAD)])
def test_an_invalid_newer_copy_is_never_replicated(mosix: FakeMosix, name: str, good: str, bad: str) -> None:
    mosix.put_copy(1, name, good, version=(4, 1))
    bad_path = mosix.put_copy(2, name, bad, version=(5, 2))
    for node in (3, 1):
        adopted = getlatest(store(mosix, node), name)
        assert adopted is not None and adopted.text == good
    assert local_text(mosix, 3, name) == good
    assert local_text(mosix, 1, name) == good
    assert bad_path.read_text() == bad  # the operator's broken copy is left for them to fix, not spread
    # node 2 itself keeps running the last good version but leaves its own newer (broken) copy alone
    s2 = store(mosix, 2)
    assert s2.documents(name)[0].text == bad
    assert getlatest(s2, name) is not None
    assert bad_path.read_text() == bad
    # once fixed (a new version on node 2), it wins everywhere
    s2.put_document(name, good + "# fixed\n" if name == "cltab" else "web 2\n", None)
    adopted = getlatest(store(mosix, 3), name)
    assert adopted is not None and adopted.origin == str(bad_path)
    assert local_text(mosix, 3, name) == bad_path.read_text()


def test_equal_counters_are_ordered_by_author_not_by_clock(mosix: FakeMosix) -> None:
    # node 1's copy is much "newer" by its clock; node 3 wrote the same counter: the author decides
    mosix.put_copy(1, "hactl", "web 1\n", version=(5, 1), mtime_ns=4_000_000_000_000_000_000)
    mosix.put_copy(3, "hactl", "web 3\n", version=(5, 3), mtime_ns=1_000_000_000)
    for node in (1, 2, 3):
        assert store(mosix, node).documents("hactl")[0].text == "web 3\n"


def test_a_copy_edited_by_hand_is_newer_than_the_version_it_was_edited_from(mosix: FakeMosix) -> None:
    s1, s2 = store(mosix, 1), store(mosix, 2)
    s1.put_document("hactl", "web start\n", None)
    assert getlatest(s2, "hactl") is not None
    assert local_text(mosix, 2, "hactl") == "web start\n"
    (mosix.node_dir(2) / "hactl").write_text("web stop\n")  # the operator edits node 2's copy in place
    docs = s1.documents("hactl")
    assert docs[0].text == "web stop\n" and docs[0].order == 2
    assert getlatest(s1, "hactl") is not None
    assert local_text(mosix, 1, "hactl") == "web stop\n"
    # node 2 adopting its own hand edit gives it a version file; the version stays the same everywhere
    assert getlatest(s2, "hactl") == docs[0]
    assert mosix.read_json(2, "hactl.version")["sha256"] == mosix.read_json(1, "hactl.version")["sha256"]
    assert [d.version for d in s2.documents("hactl")] == [docs[0].version]


def test_a_tree_without_version_files_is_ordered_by_modification_time_like_the_original(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "cltab", CLTAB_V1, mtime_ns=2_000_000_000_000_000_000)
    mosix.put_copy(2, "cltab", CLTAB_V2, mtime_ns=3_000_000_000_000_000_000)
    mosix.put_copy(3, "cltab", CLTAB_BAD, mtime_ns=1_000_000_000_000_000_000)
    s3 = store(mosix, 3)
    assert [d.text for d in s3.documents("cltab")] == [CLTAB_V2, CLTAB_V1, CLTAB_BAD]
    assert getlatest(s3, "cltab") is not None
    assert local_text(mosix, 3, "cltab") == CLTAB_V2


def test_a_garbled_version_file_counts_as_a_hand_edit(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "hactl", "web 1\n", version=(3, 1))
    path = mosix.put_copy(2, "hactl", "web 2\n")
    (path.parent / "hactl.version").write_text("{not json")
    assert [d.order for d in store(mosix, 3).documents("hactl")] == [3, 1]
    (path.parent / "hactl.version").write_text(json.dumps({"counter": 3, "author": "2", "sha256": "0" * 64}))
    docs = store(mosix, 3).documents("hactl")
    assert (docs[0].text, docs[0].order) == ("web 2\n", 4)


def test_copies_on_down_nodes_are_not_candidates(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "cltab", CLTAB_V1, version=(1, 1))
    mosix.put_copy(3, "cltab", CLTAB_V2, version=(9, 3))
    mosix.down(3)
    assert [d.text for d in store(mosix, 2).documents("cltab")] == [CLTAB_V1]
    mosix.disconnect(3)
    assert [d.text for d in store(mosix, 2).documents("cltab")] == [CLTAB_V1]


def test_put_document_numbers_above_every_copy_and_compares_versions(mosix: FakeMosix) -> None:
    mosix.put_copy(3, "hactl", "web 1\n", version=(7, 3))
    s1 = store(mosix, 1)
    current = s1.documents("hactl")[0].version
    with pytest.raises(ConflictError, match="hactl changed since it was read"):
        s1.put_document("hactl", "web 2\n", "1.1.0123456789abcdef")
    token = s1.put_document("hactl", "web 2\n", current)
    assert token.startswith("8.1.")
    assert mosix.read_json(1, "hactl.version")["counter"] == 8
    assert store(mosix, 2).documents("hactl")[0].version == token
    with pytest.raises(ConflictError):
        s1.put_document("hactl", "web 3\n", current)  # stale expectation
    assert s1.put_document("hactl", "web 3\n", None).startswith("9.1.")


def test_expect_absent_writes_a_first_version_only_once(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    first = s1.put_document("cltab", CLTAB_V1, "")  # "": only if there is no copy yet
    with pytest.raises(ConflictError, match=r"now version 1\.1\."):
        s1.put_document("cltab", CLTAB_V2, "")
    assert [(d.text, d.version) for d in store(mosix, 2).documents("cltab")] == [(CLTAB_V1, first)]


def test_adopt_refuses_a_text_that_does_not_match_its_version(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "hactl", "web 1\n", version=(2, 1))
    s2 = store(mosix, 2)
    doc = s2.documents("hactl")[0]
    forged = Versioned(text="web evil\n", version=doc.version, order=doc.order, origin=doc.origin)
    with pytest.raises(StoreError, match="does not match"):
        s2.adopt("hactl", forged)
    with pytest.raises(StoreError, match="not an openmosix document version"):
        s2.adopt("hactl", Versioned(text="web 1\n", version="abc"))
    assert local_text(mosix, 2, "hactl") is None


def test_adopt_leaves_a_newer_local_edit_alone(mosix: FakeMosix) -> None:
    mosix.put_copy(1, "hactl", "web 1\n", version=(2, 1))
    s2 = store(mosix, 2)
    doc = s2.documents("hactl")[0]
    mosix.put_copy(2, "hactl", "web 2\n", version=(2, 1))  # edited after the core read: sidecar mismatch
    s2.adopt("hactl", doc)
    assert local_text(mosix, 2, "hactl") == "web 2\n"


def test_no_copy_anywhere_and_unknown_documents(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    assert s1.documents("cltab") == []
    assert getlatest(s1, "hactl") is None
    with pytest.raises(StoreError, match="unknown cluster document 'passwd'"):
        s1.documents("passwd")


def test_copies_are_written_atomically_with_their_version(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    s1.put_document("cltab", CLTAB_V2, None)
    leftovers = [f for f in os.listdir(mosix.node_dir(1)) if f.startswith(".tmp.")]
    assert leftovers == []
    meta = mosix.read_json(1, "cltab.version")
    assert meta["author"] == "1" and meta["counter"] == 1
    assert s1.documents("cltab")[0].text == CLTAB_V2


def test_operator_document_round_trips_between_nodes(mosix: FakeMosix) -> None:
    from omha_testing.operator_contract import check_operator_document

    check_operator_document(store(mosix, 1), store(mosix, 2))
