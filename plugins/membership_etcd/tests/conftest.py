"""Fixtures of the etcd plugin's tests: real etcd servers and configurations that point at them."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator

import pytest
from etcd_support import Opened
from omha_testing.etcd import etcd_server, etcd_three

from omha_core.config import Config
from omha_core.plugins import OmhaPluginManager, get_plugin_manager

__all__ = ["etcd_server", "etcd_three"]


_names = itertools.count()


@pytest.fixture(scope="session")
def plugin_manager() -> OmhaPluginManager:
    return get_plugin_manager()


ConfigMaker = Callable[..., Config]


@pytest.fixture
def cluster_name(request: pytest.FixtureRequest) -> str:
    """A cluster name (and so a key prefix) of this test alone, so tests can share one etcd."""
    return f"t{os.getpid()}-{next(_names)}-{request.node.name[:30].replace('[', '-').replace(']', '')}"


@pytest.fixture
def opened() -> Iterator[Opened]:
    tracker = Opened()
    try:
        yield tracker
    finally:
        tracker.close()

