"""The newest valid version of a document (:func:`omha_core.backends.newest_valid`): what the daemon adopts and
``omha status`` reads, decided in one place."""

from __future__ import annotations

from omha_core.backends import Versioned, newest_valid
from omha_core.errors import OmhaError, ParseError
from omha_core.hactl import parse_hactl


def versions(*texts: str) -> list[Versioned]:
    """Newest first, as a store gives them; version "v<n>" with n counting up from the oldest."""
    return [Versioned(t, f"v{len(texts) - i}", len(texts) - i, f"node{i}") for i, t in enumerate(texts)]


def hactl(doc: Versioned) -> dict[str, str]:
    return parse_hactl(doc.text, doc.origin)


def test_the_newest_valid_version_and_the_errors_of_newer_invalid_ones() -> None:
    found, errors = newest_valid("hactl", versions("bad/group run\n", "web run\n", "db run\n"), hactl)
    assert found is not None and found[0].version == "v2" and found[1] == {"web": "run"}
    assert len(errors) == 1 and errors[0].startswith("node0:1:")  # FILE:LINE of the refused version


def test_the_scan_stops_at_the_version_already_adopted() -> None:
    docs = versions("bad/group run\n", "web run\n", "db run\n")
    found, errors = newest_valid("hactl", docs, hactl, until="v2")
    assert found is None and len(errors) == 1  # nothing newer is valid: the adopted one keeps running
    assert newest_valid("hactl", docs, hactl, until="v3") == (None, [])


def test_an_error_that_is_not_a_parse_error_names_where_the_version_came_from() -> None:
    def refuse(doc: Versioned) -> None:
        raise OmhaError("needs plugin 'x'")

    docs = [Versioned("a", "v1", 1, ""), Versioned("b", "v0", 0, "/shared/cltab")]
    found, errors = newest_valid("cltab", docs, refuse)
    assert found is None and errors == ["cltab: needs plugin 'x'", "/shared/cltab: needs plugin 'x'"]


def test_nothing_valid() -> None:
    def refuse(doc: Versioned) -> None:
        raise ParseError([])

    assert newest_valid("hactl", versions("x", "y"), refuse) == (None, [])
    assert newest_valid("hactl", [], hactl) == (None, [])
