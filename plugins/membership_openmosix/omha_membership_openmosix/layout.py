"""The ``[openmosix]`` settings and where each node's files live on MFS.

Every node's files are under ``<mfsbase>/<node>/<varpath>/`` (``/mfs/2/var/mosix-ha/``), which MFS makes
visible to every node; the same directory is ``/<varpath>`` on node 2 itself::

    clstat                 the node's status (JSON), written only by that node
    hastat                 the node's consolidated view of the cluster (JSON), for monitoring tools
    cltab, hactl           the node's copies of the cluster documents
    cltab.version, ...     the version of each copy (see versions.py)
    claims/                group claims (see claims.py)
    fence/                 fence locks and fence records (see claims.py)
    .doclock               flock(2) serialising this node's own document writes
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omha_core.errors import ConfigError
from omha_membership_openmosix import hpc
from omha_membership_openmosix.defaults import DEFAULTS

if TYPE_CHECKING:
    from omha_core.config import Config


@dataclass(frozen=True)
class Settings:
    """``[openmosix]`` in omha.toml, defaults filled in.

    :param hpcbase: the kernel's node table (``/proc/hpc``).
    :param mfsbase: the MFS mount point (``/mfs``).
    :param varpath: each node's omha directory, relative to its root (``var/mosix-ha``).
    :param whois: the command that prints this node's number.
    :param timeout: seconds without a status change after which a node up in the kernel counts as lost (the
        membership leaves it out, ``hastat`` lists it stale).
    """

    hpcbase: str = DEFAULTS["hpcbase"]
    mfsbase: str = DEFAULTS["mfsbase"]
    varpath: str = DEFAULTS["varpath"]
    whois: str = DEFAULTS["whois"]
    timeout: float = DEFAULTS["timeout"]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> Settings:
        """Settings from an ``[openmosix]`` mapping (missing keys take the defaults)."""
        merged = {**DEFAULTS, **{k: v for k, v in section.items() if k in DEFAULTS}}
        return cls(
            hpcbase=str(merged["hpcbase"]),
            mfsbase=str(merged["mfsbase"]),
            varpath=str(merged["varpath"]).strip("/"),
            whois=str(merged["whois"]),
            timeout=float(merged["timeout"]),
        )

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls.from_section(config.section("openmosix"))


@dataclass(frozen=True)
class Layout:
    """Paths of the MFS tree."""

    settings: Settings

    def node_dir(self, node: str) -> str:
        """``<mfsbase>/<node>/<varpath>``: node's omha directory as every node sees it."""
        return os.path.join(self.settings.mfsbase, node, self.settings.varpath)

    def node_root(self, node: str) -> str:
        """``<mfsbase>/<node>``: node's root filesystem as MFS shows it (unreachable while it is down)."""
        return os.path.join(self.settings.mfsbase, node)

    def path(self, node: str, *parts: str) -> str:
        return os.path.join(self.node_dir(node), *parts)

    def mfs_nodes(self) -> set[str]:
        """Numeric entries of ``<mfsbase>`` (MFS lists the nodes it can reach; a test tree lists all)."""
        try:
            return {n for n in os.listdir(self.settings.mfsbase) if hpc.is_node_name(n)}
        except OSError:
            return set()


def check_node_name(node: str, where: str) -> str:
    """``node`` if it is an openMosix node number, else a :class:`ConfigError` saying why it must be."""
    if not hpc.is_node_name(node) or node != str(int(node)) or node == "0":
        raise ConfigError(
            f"{where}: node {node!r}: with the openmosix backends a node is named by its openMosix node "
            f'number without leading zeros (e.g. node = "2"), because its files live under <mfsbase>/<number>/'
        )
    return node


def local_node(config: Config, settings: Settings) -> str:
    """This node's number: ``node`` from omha.toml when set, else what the whois command prints."""
    configured = config.data.get("node")
    if configured:
        return check_node_name(str(configured), config.path)
    return hpc.whois(settings.whois)
