"""Node status documents: what a node publishes each heartbeat, and the tolerant reading of others' documents.

A status is a JSON object written only by its node::

    {"node": "n1", "incarnation": "...", "seq": 42, "time": 1764097000.1, "pid": 1234, "host": "web1",
     "version": "0.1.0", "quorum": true, "shutting_down": false, "stopped": false, "containment": "cgroup",
     "groups": {<LocalInit.status()>},
     "unfit": {"db": "maintenance (site_plugin)"}, "failed": {"web": "test FAILED"},
     "config": {"cltab": "<version>", "hactl": "<version>", "errors": ["cltab:3: ..."]},
     "view": {"nodes": {"n2": {"state": "up", "silent": 0.4, "fencing": {...}}},
              "quorum": {"have": true, "member": true, "detail": "..."}, "why": {"web": "..."},
              "claims": {"web": "n2"}},
     "store_error": null}

``time`` is informational (shown by ``omha status``); liveness never compares it with a local clock.
Another node's document is untrusted input: :func:`parse_status` turns anything, however broken, into either a
:class:`NodeStatus` or a :class:`StatusProblem`, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omha_core.group_state import GroupState


@dataclass(frozen=True)
class NodeStatus:
    """The parts of a node's status the decision loop uses."""

    node: str
    incarnation: str
    seq: int
    groups: Mapping[str, GroupState] = field(default_factory=dict)
    unfit: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    quorum: bool = True
    shutting_down: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusProblem:
    """Why a node's status could not be used."""

    node: str
    message: str


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def parse_status(node: str, doc: Any, previous: NodeStatus | None = None) -> NodeStatus | StatusProblem:
    """Validate ``doc`` as ``node``'s status; garbage gives a :class:`StatusProblem`.

    ``previous``, the node's status parsed last cycle, lends its groups when the published groups are equal (a
    node's groups stay the same from one heartbeat to the next, and are most of the parsing)."""
    if isinstance(doc, Exception):
        return StatusProblem(node, str(doc))
    if not isinstance(doc, Mapping):
        return StatusProblem(node, "status is not a JSON object")
    inc, seq = doc.get("incarnation"), doc.get("seq")
    if not isinstance(inc, str) or isinstance(seq, bool) or not isinstance(seq, int):
        return StatusProblem(node, "status lacks a string 'incarnation' and an integer 'seq'")
    if doc.get("node") not in (None, node):
        return StatusProblem(node, f"status names another node ({doc.get('node')!r})")
    groups: Mapping[str, GroupState] = {}
    raw_groups = doc.get("groups")
    if previous is not None and raw_groups == previous.raw.get("groups"):
        groups = previous.groups
    elif isinstance(raw_groups, Mapping):
        read = ((str(name), GroupState.read(g)) for name, g in raw_groups.items())
        groups = {name: state for name, state in read if state is not None}
    return NodeStatus(
        node=node,
        incarnation=inc,
        seq=seq,
        groups=groups,
        unfit=_str_map(doc.get("unfit")),
        failed=_str_map(doc.get("failed")),
        quorum=bool(doc.get("quorum", True)),
        shutting_down=bool(doc.get("shutting_down", False)),
        raw=doc,
    )
