"""Fence-before-takeover, as a package along the failover path.

- :mod:`~omha_core.fencing.machine`: the pure fence state machine (when a lost node is safe to take over
  from, when to fence it);
- :mod:`~omha_core.fencing.levels`: the configured devices, one bounded device call, and the levels (devices
  tried in order until one succeeds), also used by ``omha fence``;
- :mod:`~omha_core.fencing.fencer`: the daemon's I/O shell, :class:`Fencer`.

Credentials are kept out of device messages by :mod:`omha_core.secrets` (``scrub``, ``secret_values``).
The names below are re-exported so that ``from omha_core.fencing import Fencer`` (and the rest) keep working.
"""

from omha_core.fencing.fencer import Fencer
from omha_core.fencing.levels import (
    Answer,
    Device,
    Outcome,
    OverrunHook,
    build_devices,
    fence_levels,
    fence_node,
    overrun_margin,
    plan,
    query_device,
    run_device,
)
from omha_core.secrets import scrub, secret_values

__all__ = [
    "Answer",
    "Device",
    "Fencer",
    "Outcome",
    "OverrunHook",
    "build_devices",
    "fence_levels",
    "fence_node",
    "overrun_margin",
    "plan",
    "query_device",
    "run_device",
    "scrub",
    "secret_values",
]
