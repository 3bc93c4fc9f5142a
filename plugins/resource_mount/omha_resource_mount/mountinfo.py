"""Reading ``/proc/self/mountinfo``: the kernel's own list of this mount namespace's mounts.

The agent trusts nothing else about whether something is mounted: not ``/etc/mtab``, not the exit status of
mount(8). Reading this file never touches the mounted filesystems, so it cannot hang on a dead NFS server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    r"""Undo the kernel's octal escapes of blanks and backslashes (``\040`` is a space)."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


@dataclass(frozen=True)
class MountEntry:
    """One line of mountinfo (see proc(5))."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    target: str
    mount_options: tuple[str, ...]
    fstype: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """True when either the mount or the filesystem is read-only (ext4 ``errors=remount-ro`` sets the
        latter)."""
        return "ro" in self.mount_options or "ro" in self.super_options

    def describe(self) -> str:
        """``SOURCE (TYPE) on TARGET`` for messages."""
        return f"{self.source} ({self.fstype}) on {self.target}"


def parse_line(line: str) -> MountEntry:
    """Parse one mountinfo line; raise ValueError when it is not one."""
    fields = line.split()
    sep = fields.index("-")  # optional fields (shared:N, master:N) come before the separator
    if sep < 6 or len(fields) < sep + 4:
        raise ValueError(f"not a mountinfo line: {line!r}")
    major, minor = fields[2].split(":")
    return MountEntry(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        major=int(major),
        minor=int(minor),
        root=unescape(fields[3]),
        target=unescape(fields[4]),
        mount_options=tuple(fields[5].split(",")),
        fstype=fields[sep + 1],
        source=unescape(fields[sep + 2]),
        super_options=tuple(fields[sep + 3].split(",")),
    )


def read_mounts(path: str = MOUNTINFO) -> list[MountEntry]:
    """Every mount of this namespace, in the kernel's order (a line this parser does not understand, from
    some future kernel, is skipped rather than taking the agent down)."""
    entries = []
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            try:
                entries.append(parse_line(line))
            except ValueError:
                continue
    return entries


def top_mount_at(target: str, entries: Iterable[MountEntry]) -> MountEntry | None:
    """The mount visible at ``target`` (when several are stacked there, the one on top), or None."""
    stacked = [e for e in entries if e.target == target]
    if not stacked:
        return None
    below = {e.parent_id for e in stacked}
    on_top = [e for e in stacked if e.mount_id not in below]
    return (on_top or stacked)[-1]


def mounts_beneath(entry: MountEntry, entries: Iterable[MountEntry]) -> list[MountEntry]:
    """Mounts whose mount point lies inside ``entry`` (they keep it busy)."""
    return [e for e in entries if e.parent_id == entry.mount_id and e.mount_id != entry.mount_id]


def find_mount(mount_id: int, entries: Iterable[MountEntry]) -> MountEntry | None:
    """The entry with this mount id, or None once it is gone."""
    return next((e for e in entries if e.mount_id == mount_id), None)
