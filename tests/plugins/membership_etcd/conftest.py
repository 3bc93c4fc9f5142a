"""Fixtures of the etcd plugin's tests: real etcd servers and configurations that point at them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from omha_membership_etcd.membership import EtcdMembership
from omha_membership_etcd.store import EtcdStore

from omha_core.config import Config, validate_config
from omha_core.plugins import OmhaPluginManager, get_plugin_manager
from tests.plugins.membership_etcd.etcd_fixture import etcd_server, etcd_three

__all__ = ["etcd_server", "etcd_three"]

_names = itertools.count()


@pytest.fixture(scope="session")
def plugin_manager() -> OmhaPluginManager:
    return get_plugin_manager()


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


ConfigMaker = Callable[..., Config]


@pytest.fixture
def cluster_name(request: pytest.FixtureRequest) -> str:
    """A cluster name (and so a key prefix) of this test alone, so tests can share one etcd."""
    return f"t{os.getpid()}-{next(_names)}-{request.node.name[:30].replace('[', '-').replace(']', '')}"


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


@pytest.fixture
def opened() -> Iterator[Opened]:
    tracker = Opened()
    try:
        yield tracker
    finally:
        tracker.close()
