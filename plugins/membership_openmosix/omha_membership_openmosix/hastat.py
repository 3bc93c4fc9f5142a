"""``hastat``: the consolidated cluster view a node writes into its own directory every cycle.

OpenMosix::HA wrote a dump of ``{group: {node: {level, state}}}`` built from every up node's ``clstat``. This is
the same view as JSON, plus what a monitoring tool needs to trust it::

    {"node": "2", "time": 1764097000.1, "timeout": 60.0,
     "up": ["1", "2", "3"],
     "nodes": {"1": {"up": true, "incarnation": "...", "seq": 42, "silent": 0.4, "stale": false}, ...},
     "groups": {"web": {"1": {"level": "start", "state": "DONE"}}},
     "stale": ["3"]}

``silent`` is how long this node has seen that node's status unchanged, on this node's monotonic clock (never
a comparison of file times with the local clock; a missing or garbled status counts as unchanged); ``stale``
lists the other up nodes silent for ``[openmosix] timeout`` seconds (the original's STOMITH list: up in the
kernel, but their daemon is not publishing). ``time`` is
informational only. Groups are listed like the original: only active instances (not CONFIGURED, not DONE at
``stop``) on up nodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from omha_membership_openmosix.hpc import node_sort_key

INACTIVE_STATE = "CONFIGURED"
STOP_LEVEL = "stop"


class Silence:
    """How long each node's ``(incarnation, seq)`` has stayed the same, on this node's monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[tuple[str, int], float]] = {}

    def observe(self, node: str, token: tuple[str, int]) -> float:
        """Record ``node``'s current token; return seconds since it last changed (0 when it just did)."""
        now = self.clock()
        seen = self._seen.get(node)
        if seen is None or seen[0] != token:
            self._seen[node] = (token, now)
            return 0.0
        return now - seen[1]


def _token(doc: Mapping[str, Any]) -> tuple[str, int] | None:
    inc, seq = doc.get("incarnation"), doc.get("seq")
    if isinstance(inc, str) and isinstance(seq, int) and not isinstance(seq, bool):
        return (inc, seq)
    return None


def active_groups(doc: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The active group instances in one (untrusted) status document: group -> {level, state}."""
    groups = doc.get("groups")
    out: dict[str, dict[str, str]] = {}
    if not isinstance(groups, Mapping):
        return out
    for name, g in groups.items():
        if not isinstance(g, Mapping):
            continue
        level, state = g.get("level"), g.get("state")
        if not isinstance(level, str) or not isinstance(state, str) or state == INACTIVE_STATE:
            continue
        if level == STOP_LEVEL and state == "DONE":
            continue
        out[str(name)] = {"level": level, "state": state}
    return out


def build(
    me: str,
    statuses: Mapping[str, Mapping[str, Any] | Exception],
    up: set[str],
    silence: Silence,
    timeout: float,
) -> dict[str, Any]:
    """The hastat document seen from node ``me``."""
    nodes: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, dict[str, str]]] = {}
    stale = []
    for node in sorted(set(statuses) | up, key=node_sort_key):
        info: dict[str, Any] = {"up": node in up}
        doc = statuses.get(node)
        token: tuple[str, int] | None = None
        if doc is None:
            info["error"] = "publishes no status"
        elif isinstance(doc, Exception):
            info["error"] = str(doc)
        else:
            token = _token(doc)
            if token is None:
                info["error"] = "status lacks a string 'incarnation' and an integer 'seq'"
            else:
                info["incarnation"], info["seq"] = token
                if node in up:
                    for group, inst in active_groups(doc).items():
                        groups.setdefault(group, {})[node] = inst
        # a node without a usable status is silent too: it is stale once that lasts `timeout` seconds
        info["silent"] = round(silence.observe(node, token or ("", -1)), 3)
        info["stale"] = node in up and node != me and info["silent"] >= timeout
        if info["stale"]:
            stale.append(node)
        nodes[node] = info
    return {
        "node": me,
        "time": time.time(),
        "timeout": timeout,
        "up": sorted(up, key=node_sort_key),
        "nodes": nodes,
        "groups": {g: groups[g] for g in sorted(groups)},
        "stale": stale,
    }
