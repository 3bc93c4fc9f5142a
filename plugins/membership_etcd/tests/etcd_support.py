"""Helpers of the etcd plugin's tests that test modules import (``make_config``, ``Opened``); the fixtures built on
them are in the conftest, which is not importable by name when every plugin's tests run in one session."""

from __future__ import annotations

from typing import Any

from omha_membership_etcd.membership import EtcdMembership
from omha_membership_etcd.store import EtcdStore

from omha_core.config import Config, validate_config
from omha_core.plugins import OmhaPluginManager


def make_config(
    pm: OmhaPluginManager,
    endpoints: list[str],
    cluster: str,
    node: str = "n1",
    dead_after: float = 2.0,
    **etcd: Any,
) -> Config:
    """A validated omha.toml using the etcd store and membership."""
    raw = {
        "node": node,
        "cluster": {"name": cluster, "store": "etcd", "membership": "etcd"},
        "timing": {"dead_after": dead_after},
        "etcd": {"endpoints": endpoints, "timeout": 1.0, **etcd},
    }
    return validate_config(raw, "omha.toml", pm)


class Opened:
    """Stores and memberships a test opened, closed at teardown (even when the test failed)."""

    def __init__(self) -> None:
        self.items: list[EtcdStore | EtcdMembership] = []

    def store(self, config: Config) -> EtcdStore:
        store = EtcdStore(config)
        self.items.append(store)
        store.open()
        return store

    def member(self, config: Config, store: EtcdStore | None = None) -> tuple[EtcdStore, EtcdMembership]:
        store = store or self.store(config)
        membership = EtcdMembership(config, store)
        self.items.insert(0, membership)  # memberships close before their stores
        membership.open()
        return store, membership

    def close(self) -> None:
        for item in self.items:
            try:
                item.close()
            except Exception:  # teardown must reach every item
                pass

