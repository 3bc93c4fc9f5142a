"""The operator document's contract, run against every store (sharedfs, etcd, openmosix): two nodes' stores
on one cluster; what one operator writes the other node reads, and two changes made from two nodes both land."""

from __future__ import annotations

from typing import Any

from omha_core.backends import Store
from omha_core.operator import read_operator, update_operator


def check_operator_document(a: Store, b: Store) -> None:
    """``a`` and ``b``: two nodes' open stores of one cluster."""
    empty = read_operator(b)
    assert (empty.prefer, empty.standby, empty.version) == ({}, frozenset(), None)

    def move(doc: dict[str, Any]) -> None:
        doc["prefer"]["web"] = "n2"

    written = update_operator(a, move)
    seen = read_operator(b)
    assert seen.prefer == {"web": "n2"} and seen.version == written.version

    def standby(doc: dict[str, Any]) -> None:
        doc["standby"] = sorted({*doc["standby"], "n3"})

    # written from the other node on top of the first change: both hold
    update_operator(b, standby)
    for store in (a, b):
        state = read_operator(store)
        assert state.prefer == {"web": "n2"} and state.standby == {"n3"}, state

    def unmove(doc: dict[str, Any]) -> None:
        doc["prefer"].pop("web", None)

    update_operator(a, unmove)
    assert read_operator(b).prefer == {} and read_operator(b).standby == {"n3"}
