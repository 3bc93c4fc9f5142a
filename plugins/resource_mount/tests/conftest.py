"""Fixtures of the ``@mount`` tests: an ext4 loop device and private mount namespaces as nodes (see
:mod:`omha_testing.disks`, shared with the ``@ocf`` tests and the fault campaign)."""

from omha_testing.disks import disk, nodes

__all__ = ["disk", "nodes"]
