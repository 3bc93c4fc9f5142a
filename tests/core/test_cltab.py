"""The cltab parser: Cluster::Init compatibility, runlevel matching, every error with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omha_core.cltab import Cltab, level_matches, parse_cltab
from omha_core.errors import ParseError

DATA = Path(__file__).parent / "data"


def test_original_syntax_parses() -> None:
    cltab = parse_cltab((DATA / "cltab.syntax").read_bytes(), "cltab.syntax")
    assert [e.tag for e in cltab.entries] == ["foo1", "foo2", "bar1", "bar2", "bar3", "footest", "barstop", "ip"]
    assert cltab.settings == {"socket": "t/clinitsock", "clstat": "t/clstat", "log": "t/clinitlog"}
    by_tag = {e.tag: e for e in cltab.entries}
    # the command keeps its own colons, quotes, $$ and redirections
    assert by_tag["foo1"].command == 'echo $$ > t/out; sleep 1; echo "done: $$" >> t/out'
    assert by_tag["foo2"].command == "echo 'a:b:c' | tr ':' ';' >> t/out"
    assert by_tag["bar3"].command == 'test -d /tmp && echo "ok" || exit 1'
    assert by_tag["barstop"].mode == "off" and by_tag["barstop"].command == ""
    assert by_tag["ip"].agent == "file"
    assert by_tag["ip"].agent_args == "/tmp/omha-web-marker content=up"
    assert by_tag["foo1"].line == 7
    assert cltab.groups == ["pretest", "foo", "bar", "web"]
    # the three settings are accepted with a warning naming the line, not refused
    assert [w.line for w in cltab.warnings] == [2, 3, 4]


@pytest.mark.parametrize(
    ("field", "level", "expected"),
    [
        ("12", "1", True),
        ("12", "2", True),
        ("12", "3", False),
        ("12", "12", True),
        ("long1,long2,5", "long2", True),
        ("long1,long2,5", "5", True),
        ("long1,long2,5", "long", False),
        ("long1,long2,5", "l", False),
        ("long3,", "long3", True),
        ("long3,", "l", False),
        ("start", "start", True),
        ("start", "s", True),  # single characters of a comma-less field match, as in the original
        ("start", "sta", False),
        ("test", "test", True),
        ("", "1", False),
    ],
)
def test_level_matching(field: str, level: str, expected: bool) -> None:
    assert level_matches(field, level) is expected


def test_every_error_is_reported_with_its_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_cltab((DATA / "cltab.broken").read_text(), "cltab.broken")
    lines = [p.line for p in info.value.problems]
    assert lines == [3, 4, 5, 6, 7, 8, 9]
    text = str(info.value)
    assert "cltab.broken:4: mode 'sometimes' is not one of wait, once, respawn, test, off" in text
    assert "cltab.broken:5: tag 'g1' already used on line 2" in text
    assert "cltab.broken:6: expected 'group:tag:runlevels:mode:command' (5 fields), found 4" in text
    assert "cltab.broken:8: command is empty" in text


def test_groups_and_tests() -> None:
    cltab = parse_cltab("a:t:test:test:true\na:r:run:respawn:sleep 9\nb:x:run:once:true\n")
    assert isinstance(cltab, Cltab)
    assert cltab.has_tests("a", "test") and not cltab.has_tests("a", "run") and not cltab.has_tests("b", "test")
    assert [e.tag for e in cltab.group_entries("a")] == ["t", "r"]


def test_invalid_utf8_names_the_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_cltab(b"a:b:1:once:true\na:c:1:once:echo \xff\n", "x")
    assert info.value.problems[0].line == 2


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    try:
        parse_cltab(data)
    except ParseError as exc:
        assert exc.problems


@given(st.text(alphabet=st.sampled_from(list("ab:#,\n @12 \t\x00x=")), max_size=300))
def test_arbitrary_text_raise_only_parse_error(text: str) -> None:
    try:
        cltab = parse_cltab(text)
    except ParseError as exc:
        assert all(p.line >= 1 for p in exc.problems)
    else:
        tags = [e.tag for e in cltab.entries]
        assert len(tags) == len(set(tags))


def test_line_numbers_count_newlines_only() -> None:
    """A form feed or Unicode line separator inside a line must not shift later line numbers; CRLF is fine."""
    text = "web:a:run:once:printf 'x\\fy\u2028z'\r\nweb:b:run:never:true\r\n"
    with pytest.raises(ParseError) as info:
        parse_cltab(text, "cltab")
    assert [(p.line, "mode 'never'" in p.message) for p in info.value.problems] == [(2, True)]
    assert parse_cltab(text.replace("never", "once")).entries[0].command == "printf 'x\\fy\u2028z'"


@pytest.mark.parametrize("levels", ["stop", "run,stop", "stop,"])
def test_nothing_left_running_or_held_may_run_at_the_stop_level(levels: str) -> None:
    """Entries at 'stop' are cleanup commands run to completion as the group stops: a respawn entry or a resource
    agent there would keep running (or holding) after the group counts as stopped and another node takes it."""
    with pytest.raises(ParseError, match=r"cltab:1: runlevels .*: a respawn entry may not run at 'stop'"):
        parse_cltab(f"web:srv:{levels}:respawn:sleep 1\n", "cltab")
    with pytest.raises(ParseError, match=r"cltab:1: runlevels .*: a resource agent may not run at 'stop'"):
        parse_cltab(f"web:ip:{levels}:wait:@file /tmp/x\n", "cltab")
    for mode in ("wait", "once", "test"):
        assert parse_cltab(f"web:clean:{levels}:{mode}:rm -f /tmp/x\n").entries[0].matches("stop")
    parse_cltab("web:srv:stopped,run:respawn:sleep 1\n")  # only the level itself is special
    parse_cltab("bar:barstop:stop:off:\n")


def test_names_the_original_accepts() -> None:
    """Cluster::Init splits each line on ':' and takes the fields as they are; omha accepts the same names except
    whitespace, '/' and '#' (hactl words, store keys and file names, comments)."""
    cltab = parse_cltab("run-1:a.b:run-1,x.y:once:true\nweb+db:t@2:1:wait:true\n")
    assert [(e.group, e.tag) for e in cltab.entries] == [("run-1", "a.b"), ("web+db", "t@2")]
    assert cltab.entries[0].matches("run-1") and cltab.entries[0].matches("x.y")
    for bad in ("a/b:t:1:once:true", "g:t/u:1:once:true", "g:t:a/b:once:true"):
        with pytest.raises(ParseError, match="cltab:1: "):
            parse_cltab(bad + "\n", "cltab")


def test_wait_failure_setting_line() -> None:
    assert parse_cltab(":::wait_failure:continue\n").settings == {"wait_failure": "continue"}
    with pytest.raises(ParseError, match="cltab:1: wait_failure 'maybe' must be 'fail' or 'continue'"):
        parse_cltab(":::wait_failure:maybe\n", "cltab")
    # the original's per-instance settings ('::override:socket:...') are ignored with a warning
    cltab = parse_cltab("::override:socket:t/init.s.override\n", "cltab")
    assert cltab.settings == {} and [w.line for w in cltab.warnings] == [1]
