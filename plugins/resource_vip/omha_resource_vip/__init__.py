"""omha plugin resource_vip: the ``@vip`` resource agent, virtual IP addresses that move with their group.

``web:ip:start:respawn:@vip 192.0.2.10/24 dev=eth0`` in a cltab holds the address on this node while the
group runs here, announces it to the neighbours, re-adds it if it vanishes, and removes it when the group
leaves. See README.md beside this package for every parameter and the design choices.

The agent module is imported only when the hook is called, so listing plugins stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping

from omha_core import hookimpl
from omha_core.lazy import Lazy

__all__ = ["omha_resource_agents"]


@hookimpl
def omha_resource_agents() -> Mapping[str, Lazy]:
    """Register ``@vip``."""
    return {"vip": Lazy("omha_resource_vip.agent:VipAgent")}
