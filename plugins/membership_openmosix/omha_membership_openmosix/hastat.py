"""``hastat``: the consolidated cluster view a node's daemon writes into its own directory every cycle.

OpenMosix::HA wrote a dump of ``{group: {node: {level, state}}}`` built from every up node's ``clstat``. This is
the same view as JSON, plus what a monitoring tool needs to trust it::

    {"node": "2", "time": 1764097000.1, "timeout": 60.0,
     "up": ["1", "2", "3"], "alive": ["1", "2"], "lost": ["3"], "stale": [],
     "quorum": {"have": true, "member": true, "detail": "2 of 3 expected nodes (majority)"},
     "nodes": {"3": {"up": true, "state": "unfenced", "alive": false, "incarnation": "...", "seq": 42,
                     "silent": 3.4, "stale": false}, ...},
     "groups": {"web": {"1": {"level": "start", "state": "DONE"}}},
     "lost_groups": {"db": {"3": {"level": "start", "state": "DONE", "node_state": "unfenced"}}}}

Who counts as running is the daemon's judgement, not the kernel's: ``state`` is what this node's daemon
concluded about each node in the same cycle (``up``, ``lost``, ``fenced``, ``unfenced``, ``stopped``, ... — the
``view`` of its published status), and a node is ``alive`` only when the kernel sees it up (``up``), the daemon
judges it ``up``, and its status changed within ``[openmosix] timeout`` seconds (``stale`` otherwise, the
original's STOMITH list); ``alive`` and ``lost`` split every node that is up in the kernel or has a status.
``groups`` lists, like the original, the active instances (not CONFIGURED, not DONE at ``stop``), but only on
alive nodes; what a node that is not alive last published is in ``lost_groups``, marked with that node's
state, so a monitoring tool never mistakes a dead daemon's last word for a running group.

``silent`` is how long this node has seen that node's status unchanged, on this node's monotonic clock (never a
comparison of file times with the local clock; a missing or garbled status counts as unchanged). ``time`` is
informational only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
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

    def silent_for(self, node: str) -> float | None:
        """Seconds since ``node``'s token last changed, as of now; None when it was never observed."""
        seen = self._seen.get(node)
        return None if seen is None else self.clock() - seen[1]

    def stale(self, nodes: Iterable[str], timeout: float) -> set[str]:
        """The nodes among ``nodes`` observed unchanged for ``timeout`` seconds or more."""
        return {n for n in nodes if (silent := self.silent_for(n)) is not None and silent >= timeout}


def token(doc: Mapping[str, Any] | Exception | None) -> tuple[str, int]:
    """What must change for a node to count as publishing: ``(incarnation, seq)``; a fixed placeholder for a
    missing or unusable status, so that such a node goes stale like one whose daemon stopped writing."""
    if isinstance(doc, Mapping):
        inc, seq = doc.get("incarnation"), doc.get("seq")
        if isinstance(inc, str) and isinstance(seq, int) and not isinstance(seq, bool):
            return (inc, seq)
    return ("", -1)


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


def judgement(own_status: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The daemon's node states and quorum from the ``view`` of this node's own status (empty when it has none
    yet, on the first cycle): ``({node: state}, quorum or None)``."""
    view = own_status.get("view") if isinstance(own_status, Mapping) else None
    if not isinstance(view, Mapping):
        return {}, None
    nodes = view.get("nodes")
    states = {}
    if isinstance(nodes, Mapping):
        for name, info in nodes.items():
            if isinstance(info, Mapping) and isinstance(info.get("state"), str):
                states[str(name)] = str(info["state"])
    quorum = view.get("quorum")
    return states, dict(quorum) if isinstance(quorum, Mapping) else None


def build(
    me: str,
    statuses: Mapping[str, Mapping[str, Any] | Exception],
    up: set[str],
    silence: Silence,
    timeout: float,
) -> dict[str, Any]:
    """The hastat document seen from node ``me``, whose daemon's judgement is the ``view`` in ``statuses[me]``.

    ``silence`` must have observed ``statuses`` (the store does so on every read).
    """
    mine = statuses.get(me)
    states, quorum = judgement(mine if isinstance(mine, Mapping) else None)
    nodes: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, dict[str, str]]] = {}
    lost_groups: dict[str, dict[str, dict[str, str]]] = {}
    stale: list[str] = []
    alive: list[str] = []
    lost: list[str] = []
    for node in sorted(set(statuses) | up, key=node_sort_key):
        info: dict[str, Any] = {"up": node in up}
        doc = statuses.get(node)
        if doc is None:
            info["error"] = "publishes no status"
        elif isinstance(doc, Exception):
            info["error"] = str(doc)
        elif token(doc) == ("", -1):
            info["error"] = "status lacks a string 'incarnation' and an integer 'seq'"
        else:
            info["incarnation"], info["seq"] = token(doc)
        silent = silence.silent_for(node)
        info["silent"] = round(silent or 0.0, 3)
        info["stale"] = node in up and node != me and silent is not None and silent >= timeout
        judged = states.get(node)
        if judged is None:  # not judged by the daemon (no view yet, or it never saw a status from the node)
            if node not in up:
                judged = "down"
            elif info["stale"]:
                judged = "stale"
            else:
                judged = "up" if "seq" in info else "lost"
        info["state"] = judged
        info["alive"] = node in up and judged == "up" and not info["stale"]
        (alive if info["alive"] else lost).append(node)
        if info["stale"]:
            stale.append(node)
        if isinstance(doc, Mapping) and "seq" in info:
            for group, inst in active_groups(doc).items():
                if info["alive"]:
                    groups.setdefault(group, {})[node] = inst
                else:
                    lost_groups.setdefault(group, {})[node] = {**inst, "node_state": judged}
        nodes[node] = info
    return {
        "node": me,
        "time": time.time(),
        "timeout": timeout,
        "up": sorted(up, key=node_sort_key),
        "alive": alive,
        "lost": lost,
        "stale": stale,
        "quorum": quorum,
        "nodes": nodes,
        "groups": {g: groups[g] for g in sorted(groups)},
        "lost_groups": {g: lost_groups[g] for g in sorted(lost_groups)},
    }
