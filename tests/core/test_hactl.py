"""The hactl parser and writer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omha_core.cltab import parse_cltab
from omha_core.errors import ParseError, Problem
from omha_core.hactl import check_hactl_against_cltab, parse_hactl, set_hactl_level


def test_parse_with_comments() -> None:
    text = "# wanted levels\nfoo run   # the web\nbar 2\n\n"
    assert parse_hactl(text) == {"foo": "run", "bar": "2"}


def test_every_error_reported() -> None:
    with pytest.raises(ParseError) as info:
        parse_hactl("foo run\nq:x 1\na/b run\nbaz a,b\nok\n", "hactl")
    assert [p.line for p in info.value.problems] == [2, 3, 4]
    text = str(info.value)
    assert "hactl:2: group 'q:x' must be any characters but whitespace, ':', '/' and '#'" in text
    assert "hactl:4: level 'a,b' must be" in text


def test_what_openmosix_ha_accepts_is_accepted_with_a_warning() -> None:
    """OpenMosix::HA's gethactl: ``my ($group, $level) = split`` into a hash, so a lone group has no level (it
    is stopped), words after the level are dropped and a later line overwrites an earlier one."""
    warnings: list[Problem] = []
    text = "foo run\nbar\nbaz run-1 now please\nfoo stop\na.b 2\n"
    assert parse_hactl(text, "site/hactl", warnings) == {"foo": "stop", "bar": "stop", "baz": "run-1", "a.b": "2"}
    assert [str(w) for w in warnings] == [
        "site/hactl:2: group 'bar' has no level: it means 'stop'",
        "site/hactl:3: words after 'group level' ignored: 'now please'",
        "site/hactl:4: group 'foo' also set on line 1: this line wins",
    ]
    # the writer replaces the first line of the group and drops the others
    assert set_hactl_level(text, "foo", "run") == "foo run\nbar\nbaz run-1 now please\na.b 2\n"
    assert parse_hactl(set_hactl_level(text, "bar", "run")) == {"foo": "stop", "bar": "run", "baz": "run-1", "a.b": "2"}


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
        parse_hactl("web run # a\x0bcomment\r\ndb r/n\r\n", "hactl")
    assert [p.line for p in info.value.problems] == [2]
