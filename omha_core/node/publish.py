"""What this node publishes: its status document, with the groups as the others must see them (``omha status``
shows it; :mod:`omha_core.status` reads it back on the other nodes)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from omha_core._version import __version__
from omha_core.backends import Store
from omha_core.group_state import GroupState
from omha_core.hactl import STOP_LEVEL
from omha_core.rules import Failed


class StatusWriter:
    """Writes this node's status documents to the store one at a time, never back to an older ``seq``.

    Each write runs in a worker thread, which cancelling its task does not stop: the shutdown cancels the beat
    that publishes while the groups stop, and that beat's write, still in flight, could land after the final
    status and leave the store saying "shutting down, group still active"; the others would fence a node that
    stopped cleanly (the fault campaign's seed 1823). A write older than the last one written is dropped."""

    def __init__(self, store: Store, node: str) -> None:
        self.store, self.node = store, node
        self._lock = threading.Lock()
        self._written = 0

    def write(self, doc: Mapping[str, Any]) -> None:
        """Write ``doc`` unless a newer status of ours is already written (in a worker thread)."""
        with self._lock:
            if doc["seq"] <= self._written:
                return
            self.store.publish(self.node, doc)
            self._written = doc["seq"]


def still_holding(groups: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """After the init's shutdown (``groups``: its status): the groups whose stop failed, or never ended (their
    resources may still be held)."""
    return {g for g, st in groups.items() if (state := GroupState.read(st)) is not None and state.stopping_or_stuck}


def published_groups(groups: dict[str, Any], holding: set[str] | None) -> dict[str, Any]:
    """The init's status ``groups`` as published. After the shutdown (``holding``: :func:`still_holding`), every
    group that stopped is reported at level ``stop``, so that the others see a node that left with nothing
    running rather than a lost node holding groups (a group whose stop failed is reported as it is: the others
    fence this node before taking it over)."""
    if holding is None:
        return groups
    return {g: st if g in holding else {**st, "level": STOP_LEVEL, "state": "DONE"} for g, st in groups.items()}


def status_document(
    *,
    node: str,
    incarnation: str,
    seq: int,
    last_view: Mapping[str, Any],
    shutting_down: bool,
    stopped: bool,
    containment: Any,
    groups: dict[str, Any],
    unfit: Mapping[str, str],
    plugin_errors: Mapping[str, str],
    failed: Mapping[str, Failed],
    versions: Mapping[str, str | None],
    doc_errors: Mapping[str, list[str]],
    store_error: str | None,
) -> dict[str, Any]:
    """This node's status document (:mod:`omha_core.status` reads it back on the other nodes)."""
    return {
        "node": node,
        "incarnation": incarnation,
        "seq": seq,
        "time": time.time(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "version": __version__,
        "quorum": bool(last_view.get("quorum", {}).get("have", False)),
        "shutting_down": shutting_down,
        "stopped": stopped,
        "containment": containment,
        "groups": groups,
        "unfit": unfit,
        "plugin_errors": dict(plugin_errors),
        "failed": {g: r for g, (_, r) in failed.items()},
        "config": {
            "cltab": versions["cltab"],
            "hactl": versions["hactl"],
            "errors": [e for errs in doc_errors.values() for e in errs],
        },
        "view": last_view,
        "store_error": store_error,
    }
