"""omha plugin ``fence_x10``: fence a node by switching off the X10 appliance module its power cord goes through.

Two device kinds, for ``[[fencing.devices]]`` in ``omha.toml``:

- ``x10_cm11a``: the CM11A computer interface (power line, two-way serial protocol);
- ``x10_cm17a``: the CM17A "FireCracker" (radio, one-way, bit-banged on DTR/RTS).

Node map values are X10 addresses (``"A1"``: house code A-P, unit 1-16)::

    [[fencing.devices]]
    name = "plugs"
    kind = "x10_cm11a"
    port = "/dev/ttyUSB0"
    repeat = 3
    nodes = { n1 = "A1", n2 = ["A2", "A3"] }

X10 cannot tell whether a module heard: successful actions are ``ok=True, verified=False`` unless a two-way
module confirmed its state. pyserial is imported only when a device acts.
"""

from __future__ import annotations

from omha_core import hookimpl
from omha_core.lazy import Lazy

__all__ = ["omha_fence_devices"]


@hookimpl
def omha_fence_devices() -> dict[str, Lazy]:
    """Register ``x10_cm11a`` and ``x10_cm17a`` (their classes' ``kind``; tests check the two agree)."""
    return {"x10_cm11a": Lazy("omha_fence_x10.cm11a:CM11A"), "x10_cm17a": Lazy("omha_fence_x10.cm17a:CM17A")}
