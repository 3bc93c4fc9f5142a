"""The ``hactl`` file: which resource groups the cluster should run, and at which runlevel.

One ``group level`` pair per line; ``#`` starts a comment. As in OpenMosix::HA, a group alone on its line
means ``stop``, extra words are ignored and the last line for a group wins (each with a warning). A group
absent from hactl, or set to ``stop``, is stopped wherever it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omha_core.cltab import LEVEL_RE, NAME_RE, NAME_RULE, decode_text, text_lines
from omha_core.errors import ParseError, Problem

if TYPE_CHECKING:
    from omha_core.cltab import Cltab

#: the level that means "run nowhere"
STOP_LEVEL = "stop"


def parse_hactl(data: str | bytes, filename: str = "hactl", warnings: list[Problem] | None = None) -> dict[str, str]:
    """Parse an hactl: ``group level`` per line, ``#`` comments. Returns group -> level in file order.

    What OpenMosix::HA accepts is accepted, with a warning (appended to ``warnings`` when given) naming the file
    and line: a group alone on its line means ``stop``, words after the level are ignored, and a group set on
    several lines takes the level of the last one. A group or level name that could not work (see
    :data:`~omha_core.cltab.NAME_RE`) is an error.
    """
    text = decode_text(data, filename)
    problems: list[Problem] = []
    found: list[Problem] = []
    wanted: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, raw in enumerate(text_lines(text), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        group = words[0]
        if not NAME_RE.match(group):
            problems.append(Problem(filename, lineno, f"group {group!r} must be {NAME_RULE}"))
            continue
        if len(words) == 1:
            found.append(Problem(filename, lineno, f"group {group!r} has no level: it means '{STOP_LEVEL}'"))
            level = STOP_LEVEL
        else:
            level = words[1]
            if len(words) > 2:
                found.append(Problem(filename, lineno, f"words after 'group level' ignored: {' '.join(words[2:])!r}"))
        if not LEVEL_RE.match(level):
            problems.append(Problem(filename, lineno, f"level {level!r} must be {NAME_RULE} and ','"))
            continue
        if group in wanted:
            found.append(Problem(filename, lineno, f"group {group!r} also set on line {lines[group]}: this line wins"))
        wanted[group] = level
        lines[group] = lineno
    if problems:
        raise ParseError(problems)
    if warnings is not None:
        warnings.extend(found)
    return wanted


def set_hactl_level(text: str, group: str, level: str | None) -> str:
    """Return ``text`` with ``group`` set to ``level`` (None removes the line), keeping comments and order."""
    out: list[str] = []
    done = False
    for raw in text_lines(text):
        words = raw.split("#", 1)[0].split()
        if words and words[0] == group:
            if level is not None and not done:
                out.append(f"{group} {level}")
            done = True
            continue
        out.append(raw)
    if not done and level is not None:
        out.append(f"{group} {level}")
    return "\n".join(out) + "\n"


def check_hactl_against_cltab(wanted: dict[str, str], cltab: Cltab, filename: str = "hactl") -> list[str]:
    """Warnings for hactl groups that the cltab does not define (they cannot run anywhere)."""
    known = set(cltab.groups)
    return [
        f"{filename}: group {g!r} is not defined in {cltab.filename}; it will not run" for g in wanted if g not in known
    ]
