"""What the HTTP listener serves, read from the store in the listener's own threads (never on the event loop).

A poller thread refreshes the cluster report every ``interval`` seconds, so the timeline sees every failover
whether or not a browser is open, and requests are answered from that snapshot: a scrape or a page costs the
daemon no store call of its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omha_core.report import cluster_report
from omha_core.web.timeline import Timeline, public_fence_record

if TYPE_CHECKING:
    from omha_core.backends import Store

log = logging.getLogger("omha.http")


def placement(report: Mapping[str, Any], statuses: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Per group, per node: where it runs, and why not on each other node (its state, a veto, a failure)."""
    out: dict[str, dict[str, str]] = {}
    nodes = report.get("nodes") or {}
    for group, g in (report.get("groups") or {}).items():
        running = set(g.get("running_on") or [])
        row: dict[str, str] = {}
        for name, node in sorted(nodes.items()):
            doc = statuses.get(name)
            doc = doc if isinstance(doc, Mapping) else {}
            unfit = (doc.get("unfit") or {}).get(group) if isinstance(doc.get("unfit"), Mapping) else None
            failed = (doc.get("failed") or {}).get(group) if isinstance(doc.get("failed"), Mapping) else None
            inst = (g.get("instances") or {}).get(name)
            if name in running:
                row[name] = f"runs here at {g.get('want')}"
            elif node.get("state") != "up":
                row[name] = f"node {node.get('state')}"
            elif unfit:
                row[name] = f"unfit: {unfit}"
            elif failed:
                row[name] = f"failed here: {failed}"
            elif inst:
                row[name] = f"{inst.get('state')} at {inst.get('level')}"
            elif g.get("want") in (None, "stop"):
                row[name] = "not wanted (hactl)"
            elif running:
                row[name] = f"standby: runs on {', '.join(sorted(running))}"
            else:
                row[name] = str(g.get("why") or "candidate")
        out[group] = row
    return out


class StatusSource:
    """The latest cluster report, fence records, placement and timeline, refreshed by a poller thread."""

    def __init__(self, store: Store, cluster: str, dead_after: float, interval: float) -> None:
        self.store = store
        self.cluster = cluster
        self.dead_after = dead_after
        self.interval = interval
        self.timeline = Timeline()
        self.lock = threading.Lock()
        self.report: dict[str, Any] | None = None
        self.fences: dict[str, Any] = {}
        self.where: dict[str, dict[str, str]] = {}
        self.updated = 0.0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="omha-http-poller", daemon=True)

    def start(self) -> None:
        """Start polling in the background (the first read too: the caller may be the event loop)."""
        self._thread.start()

    def close(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        self.refresh()
        while not self._stop.wait(self.interval):
            self.refresh()

    def refresh(self) -> None:
        """Read the store once: the report, the fence records and the statuses (for placement)."""
        try:
            report = cluster_report(self.store, self.cluster, self.dead_after)
            records = self.store.fence_records()
            statuses = self.store.statuses()
        except Exception as exc:  # a store outage must not kill the listener; the page shows the error
            with self.lock:
                self.error = f"cannot read the store: {exc}"
            log.debug("status source: %s", exc)
            return
        with self.lock:
            self.timeline.update(report, records)
            self.report = report
            self.fences = {n: public_fence_record(r) for n, r in records.items() if isinstance(r, Mapping)}
            self.where = placement(report, statuses)
            self.updated = time.time()
            self.error = None

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, in one document."""
        with self.lock:
            return {
                "status": self.report,
                "fence": self.fences,
                "placement": self.where,
                "events": self.timeline.as_list(),
                "updated": self.updated,
                "now": time.time(),
                "error": self.error,
            }

    def current_report(self) -> dict[str, Any] | None:
        with self.lock:
            return self.report
