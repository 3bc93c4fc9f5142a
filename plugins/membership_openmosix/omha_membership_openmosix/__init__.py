"""omha plugin ``membership_openmosix``: run omha where OpenMosix::HA ran, on the same files.

Registers, each under the name ``openmosix``:

- a membership backend (``[cluster] membership = "openmosix"``): the nodes up in ``/proc/hpc``, this node's
  number from ``mosctl whois`` (:mod:`.membership`, :mod:`.hpc`);
- a store backend (``[cluster] store = "openmosix"``): statuses, ``cltab``/``hactl`` copies, ``hastat``,
  claims and fencing under ``/mfs/<node>/var/mosix-ha/`` (:mod:`.store`, :mod:`.versions`, :mod:`.claims`,
  :mod:`.hastat`);
- the ``[openmosix]`` section of omha.toml (:mod:`.schema`).

See the distribution's README.md for the layout and the design choices. Hook functions import the backends
when called, so that loading the plugin (``omha plugins``, ``omha --help``) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omha_core import hookimpl
from omha_core.lazy import Lazy

if TYPE_CHECKING:
    from omha_core.backends import Membership, Store
    from omha_core.config import Config

NAME = "openmosix"


def make_store(config: Config) -> Store:
    """The ``openmosix`` store for ``config``: registered as a factory, so that validating a configuration that
    names another store (``omha status``) does not import this one's modules (issue 19, CLI start-up)."""
    from omha_membership_openmosix.store import OpenMosixStore

    return OpenMosixStore(config)


def make_membership(config: Config, store: Store) -> Membership:
    """The ``openmosix`` membership for ``config`` (a factory, as :func:`make_store`)."""
    from omha_membership_openmosix.membership import OpenMosixMembership

    return OpenMosixMembership(config, store)


@hookimpl
def omha_config_schema() -> dict[str, Any]:
    return {NAME: Lazy("omha_membership_openmosix.schema:SCHEMA")}


@hookimpl
def omha_store_backends() -> dict[str, Any]:
    return {NAME: make_store}


@hookimpl
def omha_membership_backends() -> dict[str, Any]:
    return {NAME: make_membership}
