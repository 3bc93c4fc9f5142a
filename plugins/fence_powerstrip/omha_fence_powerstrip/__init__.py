"""omha plugin fence_powerstrip: fence nodes by switching off their outlets on a network power strip.

It registers the ``apc_snmp`` fence device kind: APC switched PDUs (Rack PDU, MasterSwitch) driven natively
over SNMP v1, v2c or v3, with the node map naming outlets by number or by the name set on the PDU::

    [[fencing.devices]]
    name = "pdu1"
    kind = "apc_snmp"
    host = "pdu1.example"
    community_file = "/etc/omha/pdu1.community"   # or community / community_env; default "private"
    version = "2c"
    nodes = { n1 = "1", n2 = "web2", n3 = ["5", "6"] }   # n3 has two power supplies

Other brands (WTI, Eaton, Raritan, ...) go through the core's ``fence_agent`` kind and their ClusterLabs
agents. pysnmp is imported only when a device acts, so loading this plugin costs nothing at ``omha`` start-up.
"""

from __future__ import annotations

from typing import Any

from omha_core import hookimpl
from omha_core.lazy import Lazy


@hookimpl
def omha_fence_devices() -> dict[str, Any]:
    """The ``apc_snmp`` device kind."""
    return {"apc_snmp": Lazy("omha_fence_powerstrip.device:ApcSnmpDevice")}
