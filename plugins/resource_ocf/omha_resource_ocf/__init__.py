"""omha plugin ``resource_ocf``: run the agents HA sites already have.

- ``@ocf PROVIDER:AGENT key=value ...`` runs an OCF resource agent (``/usr/lib/ocf/resource.d/PROVIDER/AGENT``,
  e.g. ClusterLabs' ``heartbeat:IPaddr2`` or ``heartbeat:Filesystem``) through its start / stop / monitor /
  validate-all actions, checking the parameters against its meta-data;
- ``@lsb NAME`` runs an init script (``/etc/init.d/NAME``) through start / stop / status.

Both are documented in this plugin's README.md.
"""

from __future__ import annotations

from typing import Any

from omha_core import hookimpl
from omha_core.lazy import Lazy


@hookimpl
def omha_resource_agents() -> dict[str, Any]:
    """Register ``@ocf`` and ``@lsb``."""
    return {"ocf": Lazy("omha_resource_ocf.ocf:OcfAgent"), "lsb": Lazy("omha_resource_ocf.lsb:LsbAgent")}
