"""omha plugin ``membership_etcd``: membership, status store and group claims on etcd v3.

Registers the store and membership backend ``etcd`` and the ``[etcd]`` section of ``omha.toml``. Choose it with::

    [cluster]
    store = "etcd"
    membership = "etcd"

The backends are imported only when the configuration names them (the HTTP client stays out of ``omha --help``).
See README.md beside this package for the key layout, the safety argument and the options.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omha_core import hookimpl
from omha_core.lazy import Lazy

if TYPE_CHECKING:
    from omha_core.backends import Membership, Store
    from omha_core.config import Config

__all__ = ["make_membership", "make_store"]


def make_store(config: Config) -> Store:
    """The ``etcd`` store for ``config`` (factory registered through ``omha_store_backends``)."""
    from omha_membership_etcd.store import EtcdStore

    return EtcdStore(config)


def make_membership(config: Config, store: Store) -> Membership:
    """The ``etcd`` membership for ``config`` (factory registered through ``omha_membership_backends``)."""
    from omha_membership_etcd.membership import EtcdMembership

    return EtcdMembership(config, store)


@hookimpl
def omha_config_schema() -> Mapping[str, Any]:
    return {"etcd": Lazy("omha_membership_etcd.options:SCHEMA")}


@hookimpl
def omha_store_backends() -> Mapping[str, Any]:
    return {"etcd": make_store}


@hookimpl
def omha_membership_backends() -> Mapping[str, Any]:
    return {"etcd": make_membership}
