"""Where omha keeps each thing under the cluster's key prefix ``P`` (default ``/omha/<cluster name>``)::

    P/members/<node>                  member key, under the node's lease: present while the node is a member
    P/status/<node>                   the node's status (JSON), under the node's lease when its membership is etcd
    P/docs/cltab, P/docs/hactl        the cluster documents; their version is the key's mod_revision
    P/docs/operator                   the operators' standing orders (omha move/standby/cleanup), JSON
    P/claims/<group>                  group claims {"node", "incarnation", "time"}: created only if absent, no lease
    P/fence/lock/<node>/<incarnation> who fences one incarnation of a lost node: created only if absent
    P/fence/record/<node>             the last fence record of a node

Node names are omha identifiers (letters, digits, ``_``, ``.``, ``-``) and group names may not contain ``/``
(``omha_core.cltab.NAME_RE``), so neither ever contains ``/``.
"""

from __future__ import annotations

from dataclasses import dataclass


def range_end(prefix: str) -> bytes:
    """The end of etcd's key range holding every key that starts with ``prefix`` (its last byte plus one)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\x00"  # etcd: every key
    raw[-1] += 1
    return bytes(raw)


@dataclass(frozen=True)
class Keys:
    """The key layout of one cluster."""

    prefix: str

    @property
    def all(self) -> str:
        """The directory-like prefix every key of this cluster starts with."""
        return f"{self.prefix}/"

    @property
    def members(self) -> str:
        return f"{self.prefix}/members/"

    def member(self, node: str) -> str:
        return f"{self.members}{node}"

    @property
    def statuses(self) -> str:
        return f"{self.prefix}/status/"

    def status(self, node: str) -> str:
        return f"{self.statuses}{node}"

    def document(self, name: str) -> str:
        return f"{self.prefix}/docs/{name}"

    @property
    def claims(self) -> str:
        return f"{self.prefix}/claims/"

    def claim(self, group: str) -> str:
        return f"{self.claims}{group}"

    def fence_lock(self, node: str, incarnation: str) -> str:
        return f"{self.prefix}/fence/lock/{node}/{incarnation}"

    @property
    def fence_records(self) -> str:
        return f"{self.prefix}/fence/record/"

    def fence_record(self, node: str) -> str:
        return f"{self.fence_records}{node}"
