"""The ``cltab`` file: Cluster::Init's inittab with a resource-group column.

Each line is ``group:tag:runlevels:mode:command``, split on the first four colons so the command may contain
colons. Lines whose first non-blank character is ``#`` are comments; blank lines are ignored. Lines
``:::name:value`` are settings (the original's ``socket``, ``clstat``, ``log``, which omha ignores, and omha's
``wait_failure``); ``::instance:name:value`` lines (the original's per-instance overrides) are ignored with a
warning. Tags are unique in the file. Entries at level ``stop`` are cleanup commands run when the group stops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omha_core.errors import ParseError, Problem

MODES: tuple[str, ...] = ("wait", "once", "respawn", "test", "off")
#: a group or tag name: what Cluster::Init accepts (anything between two colons; ``run-1``, ``a.b``), except
#: whitespace and control characters (hactl splits on whitespace), ``/`` (group names are store keys and file
#: names) and ``#`` (hactl comments)
NAME_RE = re.compile(r"^[^\s\x00-\x1f\x7f:/#]+$")
#: a level: the same, and no ``,`` (the runlevels field separates levels with commas)
LEVEL_RE = re.compile(r"^[^\s\x00-\x1f\x7f:/#,]+$")
RUNLEVELS_RE = re.compile(r"^[^\s\x00-\x1f\x7f:/#]*$")
#: a word: setting names and resource-agent names
WORD_RE = re.compile(r"^[\w][\w.\-]*$")
#: the names :data:`NAME_RE` allows, as error messages say it
NAME_RULE = "any characters but whitespace, ':', '/' and '#'"
#: the level at which a group is stopped; entries at it are cleanup steps (see :mod:`omha_core.init.group`)
STOP = "stop"
#: what a failed ``wait`` entry does (``[init] wait_failure``, or a ``:::wait_failure:`` setting line)
WAIT_FAILURE = ("fail", "continue")
#: settings the original knew; omha accepts them and says what it does with them
KNOWN_SETTINGS: dict[str, str] = {
    "socket": "ignored: omha's control socket is [daemon] socket in omha.toml",
    "clstat": "ignored: status is published through the store ([cluster] store in omha.toml)",
    "log": "ignored: the log file is [daemon] log in omha.toml",
    "initstat": "ignored: status is published through the store ([cluster] store in omha.toml)",
}


def level_matches(runlevels: str, level: str) -> bool:
    """Cluster::Init's runlevel match.

    The field matches ``level`` when it equals it; else, if it contains a comma, when ``level`` is one of
    its comma-separated items (``long1,long2,5``; ``long3,`` is the one-item form); else when ``level`` is
    a single character of it (``12`` matches ``1`` and ``2``).
    """
    if runlevels == level:
        return True
    if "," in runlevels:
        return level in runlevels.split(",")
    return len(level) == 1 and level in runlevels


@dataclass(frozen=True)
class Entry:
    """One process or resource line of a cltab."""

    group: str
    tag: str
    runlevels: str
    mode: str
    command: str
    line: int = 0

    def matches(self, level: str) -> bool:
        """True when this entry runs at ``level``."""
        return level_matches(self.runlevels, level)

    @property
    def agent(self) -> str | None:
        """The resource agent's name for ``@name args`` commands, else None."""
        if not self.command.startswith("@"):
            return None
        return self.command[1:].split(None, 1)[0] if len(self.command) > 1 else ""

    @property
    def agent_args(self) -> str:
        """The argument text after ``@name``."""
        parts = self.command[1:].split(None, 1)
        return parts[1] if len(parts) > 1 else ""

    def same_definition(self, other: Entry) -> bool:
        """True when both entries would run the same thing the same way (the line number may differ)."""
        return (self.group, self.tag, self.runlevels, self.mode, self.command) == (
            other.group,
            other.tag,
            other.runlevels,
            other.mode,
            other.command,
        )


@dataclass(frozen=True)
class Cltab:
    """A parsed cltab: entries in file order, settings, and warnings that did not stop parsing."""

    entries: tuple[Entry, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()
    filename: str = "cltab"

    @property
    def groups(self) -> list[str]:
        """Group names in order of first appearance."""
        seen: dict[str, None] = {}
        for e in self.entries:
            seen.setdefault(e.group, None)
        return list(seen)

    def group_entries(self, group: str) -> list[Entry]:
        """The entries of ``group`` in file order."""
        return [e for e in self.entries if e.group == group]

    def has_tests(self, group: str, level: str) -> bool:
        """True when ``group`` has ``test`` entries at ``level``."""
        return any(e.mode == "test" and e.matches(level) for e in self.group_entries(group))


#: a byte that was not UTF-8, as ``surrogateescape`` decodes it
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def decode_text(data: str | bytes, filename: str) -> str:
    """``data`` as text; bytes that are not UTF-8 are an error naming the line and the byte. A store hands over
    text read with ``surrogateescape`` (it must not fail on the file it reads): such escapes are the same
    error, so a daemon refuses the file as ``omha check`` does, instead of running it."""
    if isinstance(data, str):
        if not _ESCAPED_BYTE.search(data):
            return data
        data = data.encode("utf-8", "surrogateescape")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError([Problem(filename, line, f"not valid UTF-8 text (byte {exc.start})")]) from None


def text_lines(text: str) -> list[str]:
    """The lines of ``text`` as an editor numbers them: split on ``\\n`` only (a ``\\r`` before it dropped), not on
    the form feeds, vertical tabs and Unicode separators that :meth:`str.splitlines` also breaks at, which would
    shift every later line number in error messages."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_cltab(data: str | bytes, filename: str = "cltab") -> Cltab:
    """Parse a cltab, reporting every problem in the file at once as :class:`ParseError`."""
    text = decode_text(data, filename)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    entries: list[Entry] = []
    settings: dict[str, str] = {}
    tags: dict[str, int] = {}
    for lineno, raw in enumerate(text_lines(text), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "\x00" in line:
            problems.append(Problem(filename, lineno, "NUL byte in line"))
            continue
        parts = line.split(":", 4)
        if len(parts) < 5:
            problems.append(
                Problem(
                    filename,
                    lineno,
                    f"expected 'group:tag:runlevels:mode:command' (5 fields), found {len(parts)}",
                )
            )
            continue
        group, tag, runlevels, mode, command = (p.strip() for p in parts)
        if not group and not tag and not runlevels:
            # ':::name:value' setting
            if not WORD_RE.match(mode):
                problems.append(Problem(filename, lineno, f"setting name {mode!r} is not a word"))
                continue
            if mode == "wait_failure":
                if command not in WAIT_FAILURE:
                    problems.append(Problem(filename, lineno, f"wait_failure {command!r} must be 'fail' or 'continue'"))
                settings[mode] = command
                continue
            settings[mode] = command
            note = KNOWN_SETTINGS.get(mode, "unknown setting, ignored")
            warnings.append(Problem(filename, lineno, f"setting {mode!r}: {note}"))
            continue
        if not group and not tag and runlevels:
            # '::override:name:value': Cluster::Init's per-instance settings (its cltab.override)
            warnings.append(Problem(filename, lineno, f"setting {mode!r} for {runlevels!r}: ignored by omha"))
            continue
        bad = False
        for what, value in (("group", group), ("tag", tag)):
            if not NAME_RE.match(value):
                problems.append(Problem(filename, lineno, f"{what} {value!r} must be {NAME_RULE}"))
                bad = True
        if not RUNLEVELS_RE.match(runlevels):
            problems.append(Problem(filename, lineno, f"runlevels {runlevels!r} must be levels separated by commas"))
            bad = True
        elif level_matches(runlevels, STOP) and (mode == "respawn" or command.startswith("@")):
            # entries at 'stop' are cleanup steps run to completion while the group still holds its claim; a group
            # at 'stop' counts as holding nothing once they are done, so nothing may be left running or held then
            what = "a respawn entry" if mode == "respawn" else "a resource agent"
            msg = (
                f"runlevels {runlevels!r}: {what} may not run at 'stop' (entries at 'stop' are cleanup commands "
                "run to completion as the group stops: wait, once or test)"
            )
            problems.append(Problem(filename, lineno, msg))
            bad = True
        if mode not in MODES:
            problems.append(Problem(filename, lineno, f"mode {mode!r} is not one of {', '.join(MODES)}"))
            bad = True
        if not command and mode != "off":
            problems.append(Problem(filename, lineno, "command is empty"))
            bad = True
        if command.startswith("@") and not WORD_RE.match(command[1:].split(None, 1)[0] if command[1:] else ""):
            problems.append(Problem(filename, lineno, f"resource agent name missing or invalid in {command!r}"))
            bad = True
        if tag in tags:
            problems.append(Problem(filename, lineno, f"tag {tag!r} already used on line {tags[tag]}"))
            bad = True
        elif tag:
            tags[tag] = lineno
        if not bad:
            entries.append(Entry(group, tag, runlevels, mode, command, lineno))
    if problems:
        raise ParseError(problems)
    return Cltab(tuple(entries), settings, tuple(warnings), filename)
