"""The ``cltab`` file: Cluster::Init's inittab with a resource-group column.

Each line is ``group:tag:runlevels:mode:command``, split on the first four colons so the command may contain
colons. Lines whose first non-blank character is ``#`` are comments; blank lines are ignored. Lines
``:::name:value`` are settings (the original's ``socket``, ``clstat``, ``log``). Tags are unique in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from omha_core.errors import ParseError, Problem

MODES: tuple[str, ...] = ("wait", "once", "respawn", "test", "off")
NAME_RE = re.compile(r"^[\w][\w.\-]*$")
LEVEL_RE = re.compile(r"^\w+$")
RUNLEVELS_RE = re.compile(r"^[\w,]*$")
#: settings the original knew; omha accepts them and says what it does with them
KNOWN_SETTINGS: dict[str, str] = {
    "socket": "ignored: omha's control socket is [daemon] socket in omha.toml",
    "clstat": "ignored: status is published through the store ([cluster] store in omha.toml)",
    "log": "ignored: the log file is [daemon] log in omha.toml",
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


def decode_text(data: str | bytes, filename: str) -> str:
    if isinstance(data, str):
        return data
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
            if not NAME_RE.match(mode):
                problems.append(Problem(filename, lineno, f"setting name {mode!r} is not a word"))
                continue
            settings[mode] = command
            note = KNOWN_SETTINGS.get(mode, "unknown setting, ignored")
            warnings.append(Problem(filename, lineno, f"setting {mode!r}: {note}"))
            continue
        bad = False
        for what, value in (("group", group), ("tag", tag)):
            if not NAME_RE.match(value):
                problems.append(Problem(filename, lineno, f"{what} {value!r} must be letters, digits, '_', '.' or '-'"))
                bad = True
        if not RUNLEVELS_RE.match(runlevels):
            problems.append(Problem(filename, lineno, f"runlevels {runlevels!r} must be words separated by commas"))
            bad = True
        elif level_matches(runlevels, "stop") and mode != "off":  # 'off' never runs: the original's files have it
            # a group at 'stop' counts as holding nothing: an entry running there would be invisible to failover
            msg = f"runlevels {runlevels!r}: 'stop' is the level at which a group runs nothing; no entry may run at it"
            problems.append(Problem(filename, lineno, msg))
            bad = True
        if mode not in MODES:
            problems.append(Problem(filename, lineno, f"mode {mode!r} is not one of {', '.join(MODES)}"))
            bad = True
        if not command and mode != "off":
            problems.append(Problem(filename, lineno, "command is empty"))
            bad = True
        if command.startswith("@") and not NAME_RE.match(command[1:].split(None, 1)[0] if command[1:] else ""):
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
