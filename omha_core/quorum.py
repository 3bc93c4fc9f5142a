"""Quorum policies: may this partition act?

- ``majority`` (default): more than half of the expected node count, which is ``[quorum] expected`` when set,
  else the largest membership this node has ever seen (remembered in the state directory across restarts, so
  a node restarted alone does not believe it is the whole cluster).
- ``ratio``: the original's rule: at least ``ratio`` (0.6) of the node count seen when quorum was last held.
- ``ignore``: always quorate (two-node clusters with reliable fencing, tests).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from omha_core.fsutil import atomic_write_json


class Quorum:
    """Evaluates the configured policy and remembers what it must across restarts."""

    def __init__(self, options: Mapping[str, Any], state_file: str | None = None) -> None:
        self.policy = str(options.get("policy", "majority"))
        self.expected = options.get("expected")
        self.ratio = float(options.get("ratio", 0.6))
        self.state_file = state_file
        self.largest = 0
        self.reference = 0
        if state_file and os.path.exists(state_file):
            try:
                with open(state_file) as fh:
                    saved = json.load(fh)
                self.largest = int(saved.get("largest", 0))
                self.reference = int(saved.get("reference", 0))
            except (OSError, ValueError, AttributeError):
                pass  # a damaged memory file only costs us the memory
        self.have = False
        self.reason = ""

    def _save(self) -> None:
        if self.state_file:
            try:
                atomic_write_json(self.state_file, {"largest": self.largest, "reference": self.reference})
            except OSError:
                pass

    def update(self, alive: int) -> bool:
        """Evaluate with ``alive`` nodes heartbeating (this node included); return whether quorum holds."""
        changed = False
        if alive > self.largest:
            self.largest, changed = alive, True
        if self.policy == "ignore":
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
