"""The events the status page draws on its timeline: failovers, node losses, fence attempts.

Derived from successive cluster reports (a group's holder changing, a node's state changing) and from the
store's fence records, so every node's page tells the same story whichever node acted.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Mapping
from typing import Any

#: fields of a fence record that the page may show (a record holds no credentials; this keeps it that way)
FENCE_FIELDS = ("node", "by", "time", "action", "ok", "result", "device", "kind", "verified", "message", "errors")


def public_fence_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a fence record the page and the API show."""
    return {k: record.get(k) for k in FENCE_FIELDS if k in record}


class Timeline:
    """The last ``size`` events, oldest first."""

    def __init__(self, size: int = 200, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.size = size
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self.node_state: dict[str, str] = {}
        self.holder: dict[str, str] = {}
        self.fences_seen: set[tuple[Any, ...]] = set()
        self.primed = False

    def update(self, report: Mapping[str, Any], fence_records: Mapping[str, Mapping[str, Any]]) -> None:
        """Record what changed since the last report. The first report only sets the baseline (its fence
        records are history, so they are events)."""
        now = self.clock()
        new: list[dict[str, Any]] = []
        for name, node in sorted((report.get("nodes") or {}).items()):
            state = str(node.get("state"))
            before = self.node_state.get(name)
            if self.primed and before is not None and before != state:
                if before == "up":
                    new.append({"time": now, "kind": "node-lost", "node": name, "state": state,
                                "text": f"{name} {state}"})
                elif state == "up":
                    new.append({"time": now, "kind": "node-up", "node": name, "text": f"{name} up"})
            self.node_state[name] = state
        for group, g in sorted((report.get("groups") or {}).items()):
            running = list(g.get("running_on") or [])
            if len(running) != 1:
                continue
            to = running[0]
            before = self.holder.get(group)
            if self.primed and before != to:
                if before is None:
                    new.append({"time": now, "kind": "start", "group": group, "to": to, "text": f"{group} on {to}"})
                else:
                    new.append({"time": now, "kind": "failover", "group": group, "from": before, "to": to,
                                "text": f"{group}: {before} \u2192 {to}"})
            self.holder[group] = to
        for node, rec in fence_records.items():
            if not isinstance(rec, Mapping):
                continue
            key = (node, rec.get("incarnation"), rec.get("time"), rec.get("result"))
            if key in self.fences_seen:
                continue
            self.fences_seen.add(key)
            when = rec.get("time")
            ok = bool(rec.get("ok"))
            new.append({
                "time": float(when) if isinstance(when, int | float) else now,
                "kind": "fence",
                "node": node,
                "ok": ok,
                "by": rec.get("by"),
                "device": rec.get("device"),
                "text": f"{node} fenced by {rec.get('by')} ({rec.get('device')})" if ok
                else f"fencing {node} FAILED: {rec.get('message') or ''}",
            })
        self.primed = True
        if new:  # a fence record may be older than a loss seen earlier: keep the list in time order
            merged = sorted([*self.events, *new], key=lambda e: e["time"])
            self.events = collections.deque(merged[-self.size :], maxlen=self.size)

    def as_list(self) -> list[dict[str, Any]]:
        return list(self.events)
