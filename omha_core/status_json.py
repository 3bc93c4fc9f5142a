"""Compact JSON for a node's published status, re-encoding only the groups that changed since the last cycle.

A daemon publishes its whole status every heartbeat (twice a second at the defaults); with 500 entries that
document is ~80 kB. ``json.dumps(..., indent=1)`` runs the pure-Python encoder (~16 ms a cycle here, most of an
idle daemon's CPU, issue 19); the compact form uses the C encoder, and a group whose status compares equal to the
one encoded last cycle reuses its text, so an idle daemon encodes only the few small fields that always change
(``seq``, ``time``). The output is exactly ``json.dumps(doc, sort_keys=True, separators=(",", ":"))``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def compact(obj: Any) -> str:
    """``obj`` as compact JSON with sorted keys (the C encoder)."""
    return _encode(obj)


class StatusEncoder:
    """Encodes status documents; remembers each group's last status and text (one encoder per publishing node)."""

    def __init__(self) -> None:
        self._groups: dict[str, tuple[Any, str]] = {}

    def encode(self, doc: Mapping[str, Any]) -> str:
        """``doc`` as compact JSON with sorted keys; its ``groups`` mapping encoded group by group, cached."""
        groups = doc.get("groups")
        if not isinstance(groups, Mapping) or not all(isinstance(k, str) for k in groups):
            return _encode(doc)
        cache: dict[str, tuple[Any, str]] = {}
        parts = []
        for name in sorted(groups):
            status = groups[name]
            hit = self._groups.get(name)
            # the same object again may have been changed in place since: only an equal *other* object is trusted
            text = hit[1] if hit is not None and hit[0] is not status and hit[0] == status else _encode(status)
            cache[name] = (status, text)
            parts.append(f"{_encode(name)}:{text}")
        self._groups = cache
        body = "{" + ",".join(parts) + "}"
        # the other top-level keys, encoded around "groups" in its sorted place
        head = _encode({k: v for k, v in doc.items() if k < "groups"})
        tail = _encode({k: v for k, v in doc.items() if k > "groups"})
        out = head[:-1] + ("," if head != "{}" else "") + '"groups":' + body
        return out + ("," + tail[1:] if tail != "{}" else "}")
