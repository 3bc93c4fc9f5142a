"""A fast reader of installed entry points, so that ``omha`` starts quickly.

``importlib.metadata`` costs ~30 ms to import on this class of machine (it pulls in the ``email`` package to
parse metadata), about a third of ``omha plugins``' whole run. omha needs much less: the ``[omha]`` section of
each installed distribution's ``entry_points.txt``, and the distribution's name and version for ``omha plugins``.
This module reads exactly that from the ``*.dist-info`` / ``*.egg-info`` directories on ``sys.path``, first
occurrence of a distribution winning, as ``importlib.metadata`` does; a test checks the two always agree.
"""

from __future__ import annotations

import os
import re
import sys


class EntryPoint:
    """One entry point of an installed distribution. (A plain class, not a dataclass, nor a named tuple, whose
    class is built by ``exec``: ``omha plugins`` imports neither dataclasses nor inspect, issue 19.)"""

    __slots__ = ("distribution", "name", "value", "version")

    def __init__(self, name: str, value: str, distribution: str | None, version: str | None) -> None:
        self.name, self.value, self.distribution, self.version = name, value, distribution, version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntryPoint):
            return NotImplemented
        return (self.name, self.value, self.distribution, self.version) == (
            other.name,
            other.value,
            other.distribution,
            other.version,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.value, self.distribution, self.version))

    def __repr__(self) -> str:
        fields = f"name={self.name!r}, value={self.value!r}, distribution={self.distribution!r}"
        return f"EntryPoint({fields}, version={self.version!r})"

    def load(self) -> object:
        """Import the module (and attribute, for ``module:attr`` values) the entry point names."""
        import importlib

        module_name, _, attr = self.value.partition(":")
        obj: object = importlib.import_module(module_name.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _headers(path: str) -> dict[str, str]:
    """The ``Name`` and ``Version`` headers of a METADATA / PKG-INFO file."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                key, sep, value = line.partition(":")
                if sep and key in ("Name", "Version"):
                    out[key] = value.strip()
    except OSError:
        pass
    return out


def _section(path: str, group: str) -> list[tuple[str, str]]:
    """``name = value`` pairs of ``[group]`` in an entry_points.txt."""
    pairs: list[tuple[str, str]] = []
    current = None
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for raw in fh:
                line = raw.strip()
                if not line or line.startswith(("#", ";")):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    current = line[1:-1].strip()
                elif current == group and "=" in line:
                    name, _, value = line.partition("=")
                    pairs.append((name.strip(), value.strip()))
    except OSError:
        pass
    return pairs


def entry_points(group: str, path: list[str] | None = None) -> list[EntryPoint]:
    """Every entry point of ``group`` in the distributions installed on ``path`` (default ``sys.path``)."""
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path if path is None else path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for d in names:
            if not d.endswith((".dist-info", ".egg-info")):
                continue
            base = os.path.join(entry or ".", d)
            meta = _headers(os.path.join(base, "METADATA" if d.endswith(".dist-info") else "PKG-INFO"))
            dist = meta.get("Name") or d.rsplit(".", 1)[0].split("-")[0]
            key = _normalize(dist)
            if key in seen:
                continue
            seen.add(key)
            for name, value in _section(os.path.join(base, "entry_points.txt"), group):
                found.append(EntryPoint(name, value, meta.get("Name"), meta.get("Version")))
    return found
