"""The hactl parser and writer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omha_core.cltab import parse_cltab
from omha_core.errors import ParseError
from omha_core.hactl import check_hactl_against_cltab, parse_hactl, set_hactl_level


def test_parse_with_comments() -> None:
    text = "# wanted levels\nfoo run   # the web\nbar 2\n\n"
    assert parse_hactl(text) == {"foo": "run", "bar": "2"}


def test_every_error_reported() -> None:
    with pytest.raises(ParseError) as info:
        parse_hactl("foo run\nfoo stop\nbar\nbaz a-b\nq:x 1\n", "hactl")
    assert [p.line for p in info.value.problems] == [2, 3, 4, 5]
    assert "hactl:2: group 'foo' already set on line 1" in str(info.value)


def test_set_level_keeps_comments_and_order() -> None:
    text = "# top\nfoo run # c\nbar 2\n"
    assert set_hactl_level(text, "bar", "3") == "# top\nfoo run # c\nbar 3\n"
    assert set_hactl_level(text, "new", "run") == "# top\nfoo run # c\nbar 2\nnew run\n"
    assert set_hactl_level(text, "foo", None) == "# top\nbar 2\n"
    assert parse_hactl(set_hactl_level(text, "bar", "stop")) == {"foo": "run", "bar": "stop"}


def test_unknown_groups_are_warned() -> None:
    cltab = parse_cltab("foo:a:run:once:true\n", "cltab")
    assert check_hactl_against_cltab({"foo": "run", "nope": "run"}, cltab) == [
        "hactl: group 'nope' is not defined in cltab; it will not run"
    ]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        parse_hactl(data)
    except ParseError:
        pass


@settings(max_examples=60)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9_]{1,6}", fullmatch=True),
        max_size=8,
    )
)
def test_writer_round_trips(wanted: dict[str, str]) -> None:
    text = ""
    for group, level in wanted.items():
        text = set_hactl_level(text, group, level)
    assert parse_hactl(text) == wanted


def test_line_numbers_count_newlines_only() -> None:
    with pytest.raises(ParseError) as info:
        parse_hactl("web run # a\x0bcomment\r\ndb run extra\r\n", "hactl")
    assert [p.line for p in info.value.problems] == [2]
