"""Quorum policies: may this partition act?

- ``majority`` (default): more than half of the expected node count, which is ``[quorum] expected`` when set,
  else the largest membership this node has ever seen (remembered in the state directory across restarts, so
  a node restarted alone does not believe it is the whole cluster).
- ``ratio``: the original's rule: at least ``ratio`` (0.6) of the node count seen when quorum was last held.
- ``two_node``: corosync votequorum's ``two_node`` with ``wait_for_all``, for a cluster of exactly two nodes:
  both alive is quorate; one alone is quorate only once the two have been seen alive together (remembered in
  the state directory, so a daemon restart does not forget it, like the largest membership), and only while a
  fence device covers the peer. The fence race then decides the survivor: a lost peer that held groups is
  fenced before anything moves, and exactly one node fences (the store's fence lock).
- ``ignore``: always quorate (tests; a two-node cluster should use ``two_node``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omha_core.fsutil import atomic_write_json

if TYPE_CHECKING:
    from omha_core.config import Config


class Quorum:
    """Evaluates the configured policy and remembers what it must across restarts."""

    def __init__(self, options: Mapping[str, Any], state_file: str | None = None) -> None:
        self.policy = str(options.get("policy", "majority"))
        self.expected = options.get("expected")
        self.ratio = float(options.get("ratio", 0.6))
        self.state_file = state_file
        self.largest = 0
        self.reference = 0
        #: two_node: both nodes have been seen alive together at least once (wait_for_all)
        self.complete = False
        if state_file and os.path.exists(state_file):
            try:
                with open(state_file) as fh:
                    saved = json.load(fh)
                self.largest = int(saved.get("largest", 0))
                self.reference = int(saved.get("reference", 0))
                self.complete = bool(saved.get("complete", False))
            except (OSError, ValueError, AttributeError):
                pass  # a damaged memory file only costs us the memory
        self.have = False
        self.reason = ""

    def _save(self) -> None:
        if self.state_file:
            try:
                atomic_write_json(
                    self.state_file, {"largest": self.largest, "reference": self.reference, "complete": self.complete}
                )
            except OSError:
                pass

    def would_hold(self, alive: int, peer_fenceable: bool = False) -> bool:
        """Whether quorum would hold with ``alive`` nodes, without changing what this evaluator remembers."""
        probe = copy.copy(self)
        probe.state_file = None
        return probe.update(alive, peer_fenceable)

    def update(self, alive: int, peer_fenceable: bool = False) -> bool:
        """Evaluate with ``alive`` nodes heartbeating (this node included); return whether quorum holds.

        :param peer_fenceable: (``two_node``) a fence device covers the other node of the pair.
        """
        changed = False
        if alive > self.largest:
            self.largest, changed = alive, True
        if self.policy == "two_node" and self.largest > 2:  # not a pair after all: never one node alone
            self.have = alive * 2 > self.largest
            self.reason = f"{alive} of {self.largest} nodes seen (two_node, but more than 2 nodes: majority)"
        elif self.policy == "two_node":
            if alive >= 2 and not self.complete:
                self.complete = changed = True
            if alive >= 2:
                self.have, self.reason = True, f"{alive} of 2 nodes (two_node)"
            elif not self.complete:
                self.have = False
                self.reason = "1 of 2 nodes (two_node): waiting for both nodes to have been up together once"
            elif not peer_fenceable:
                self.have, self.reason = False, "1 of 2 nodes (two_node): no fence device covers the other node"
            else:
                self.have, self.reason = True, "1 of 2 nodes (two_node): quorate alone, the fence race decides"
        elif self.policy == "ignore":
            self.have, self.reason = True, "quorum policy 'ignore'"
        elif self.policy == "ratio":
            ref = self.reference or alive
            self.have = alive >= self.ratio * ref
            self.reason = f"{alive} of {ref} nodes (ratio {self.ratio:g})"
            if self.have and self.reference != alive:
                self.reference, changed = alive, True
        else:
            expected = int(self.expected or self.largest)
            self.have = alive * 2 > expected
            self.reason = f"{alive} of {expected} expected nodes (majority)"
        if changed:
            self._save()
        return self.have


def check_warnings(config: Config) -> list[str]:
    """What ``omha check`` warns about the quorum policy of a two-node cluster.

    A cluster is taken to have two nodes when ``[quorum] expected = 2``, or else when its fence devices cover
    exactly two nodes in all (every node of a fenced cluster must be covered, so that is its node list).
    """
    quorum = config.section("quorum")
    policy = quorum.get("policy", "majority")
    devices = config.section("fencing").get("devices", [])
    covered = {n for d in devices for n in d.get("nodes", {})}
    expected = quorum.get("expected")
    pair = expected == 2 or (expected is None and len(covered) == 2)
    where = f"{config.path}: [quorum] policy"
    why = (
        "[quorum] expected = 2" if expected == 2 else f"the fence devices cover 2 nodes ({', '.join(sorted(covered))})"
    )
    if pair and policy == "majority":
        return [
            f"{where}: a two-node cluster ({why}) at 'majority' never fails over (1 of 2 is no majority); "
            'set policy = "two_node" (with a fence device for each node)'
        ]
    if policy == "two_node":
        if (expected is not None and expected != 2) or len(covered) > 2:
            return [f"{where}: 'two_node' is for exactly two nodes; with more it acts as 'majority'"]
        if len(covered) < 2:
            return [
                f"{where}: 'two_node' without a fence device for each node: a node alone is quorate only when a "
                "device covers the other"
            ]
    return []
