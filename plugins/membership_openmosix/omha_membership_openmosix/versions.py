"""Versions of the per-node copies of ``cltab`` and ``hactl``, ordered without trusting clocks.

OpenMosix::HA's ``getlatest`` took the copy with the newest modification time, so a node whose clock ran
ahead won every time. Here each copy has a *version file* beside it (``cltab.version``)::

    {"counter": 7, "author": "2", "sha256": "<hex digest of the copy's bytes>"}

``put_document`` writes ``counter`` = one more than the highest counter on any up node, and ``author`` = the
writing node; ``adopt`` copies the version along with the text. Copies are ranked by
``(counter, edited, author, sha256)``: a higher counter is newer; equal counters (two nodes wrote at the same
moment) are settled by the author's node number and then the digest, which every node computes alike.

A copy whose version file is missing, garbled, or names another digest was edited by hand (an operator, or an
old OpenMosix::HA tree). It ranks as ``counter + 1`` of the version it was edited from (1 with no version
file), authored by the node holding it, and only then are modification times compared (``edited`` is the
copy's mtime in nanoseconds, 0 for versioned copies): clocks matter only between two hand edits of the same
version, where they are the only information there is. The text is always written before its version file,
so a reader never pairs an old text with a new version.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from omha_core.fsutil import atomic_write, atomic_write_json
from omha_membership_openmosix.hpc import node_sort_key

VERSION_SUFFIX = ".version"


def digest(data: bytes) -> str:
    """The sha256 hex digest that identifies a document's bytes."""
    return hashlib.sha256(data).hexdigest()


def encode(text: str) -> bytes:
    """A document's bytes (texts read with ``surrogateescape`` round-trip exactly)."""
    return text.encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Copy:
    """One node's copy of a document.

    :param node: the node whose directory holds it.
    :param path: its path.
    :param text: its text.
    :param counter: its version counter.
    :param author: the node that wrote this version.
    :param sha256: digest of its bytes.
    :param edited: mtime in ns when edited by hand (no matching version file), else 0.
    """

    node: str
    path: str
    text: str
    counter: int
    author: str
    sha256: str
    edited: int = 0

    @property
    def token(self) -> str:
        """The version token given to the core: ``<counter>.<author>.<digest prefix>``, equal for equal copies."""
        return make_token(self.counter, self.author, self.sha256)

    @property
    def rank(self) -> tuple[int, int, tuple[int, str], str]:
        """Sort key, newest greatest."""
        return (self.counter, self.edited, node_sort_key(self.author), self.sha256)


def make_token(counter: int, author: str, sha256: str) -> str:
    return f"{counter}.{author}.{sha256[:16]}"


def parse_token(token: str) -> tuple[int, str, str]:
    """``(counter, author, digest prefix)`` of a token made by :func:`make_token`; ValueError if malformed."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1] or len(parts[2]) != 16:
        raise ValueError(f"not an openmosix document version: {token!r}")
    return int(parts[0]), parts[1], parts[2]


def _read_version_file(path: str) -> dict[str, object] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_copy(node: str, directory: str, name: str) -> Copy | None:
    """``node``'s copy of ``name`` in ``directory``, or None when it has none. OSError when unreadable."""
    path = os.path.join(directory, name)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
            mtime = os.fstat(fh.fileno()).st_mtime_ns
    except FileNotFoundError:
        return None
    sha = digest(data)
    text = data.decode("utf-8", "surrogateescape")
    meta = _read_version_file(path + VERSION_SUFFIX) or {}
    counter, author = meta.get("counter"), meta.get("author")
    valid_counter = isinstance(counter, int) and not isinstance(counter, bool) and counter >= 0
    base = counter if valid_counter and isinstance(counter, int) else 0
    if valid_counter and isinstance(author, str) and author and "." not in author and meta.get("sha256") == sha:
        return Copy(node, path, text, base, author, sha)
    return Copy(node, path, text, base + 1, node, sha, edited=max(mtime, 1))


def write_copy(node: str, directory: str, name: str, text: str, counter: int, author: str) -> Copy:
    """Write a versioned copy atomically: the text first, then its version file."""
    data = encode(text)
    sha = digest(data)
    path = os.path.join(directory, name)
    atomic_write(path, data)
    atomic_write_json(path + VERSION_SUFFIX, {"counter": counter, "author": author, "sha256": sha})
    return Copy(node, path, text, counter, author, sha)


def write_version(directory: str, name: str, copy: Copy, counter: int, author: str) -> None:
    """Give an existing (hand-edited) copy its version file, leaving the text alone."""
    atomic_write_json(
        os.path.join(directory, name + VERSION_SUFFIX), {"counter": counter, "author": author, "sha256": copy.sha256}
    )


def newest_first(copies: list[Copy]) -> list[Copy]:
    """Copies ordered newest first, one per version token (the best-ranked copy of each)."""
    seen: set[str] = set()
    out = []
    for copy in sorted(copies, key=lambda c: c.rank, reverse=True):
        if copy.token not in seen:
            seen.add(copy.token)
            out.append(copy)
    return out
