"""omha plugin ``resource_mount``: the ``@mount`` resource agent, filesystems that move with their group.

``web:fs:start:respawn:@mount LABEL=www /srv/www type=ext4 options=noatime fsck=yes`` mounts the filesystem
where the group runs, stops whatever keeps it busy when the group leaves, and re-mounts it when it disappears
behind omha's back. The parameters are documented in this plugin's README.md.
"""

from __future__ import annotations

from typing import Any

from omha_core import hookimpl
from omha_core.lazy import Lazy


@hookimpl
def omha_resource_agents() -> dict[str, Any]:
    """Register ``@mount``."""
    return {"mount": Lazy("omha_resource_mount.agent:MountAgent")}
