"""Running an omha daemon as a node inside a network namespace, as it runs on a real machine.

``ip netns exec NS`` mounts a fresh /sys in a private mount namespace, which hides the machine's cgroup2 mount.
A daemon there falls back to environment markers (:mod:`omha_core.init.markers`) and starts every resource-agent
action as a Python process of its own, where a real node, seeing its cgroups, holds each child in a cgroup and
forks agent actions from its agent host (:mod:`omha_core.init.host`). :func:`as_node` gives the node's private
mount namespace the cgroup2 hierarchy back at /sys/fs/cgroup (seen only inside that namespace, and gone with it).
"""

from __future__ import annotations

#: mounts the cgroup2 hierarchy (quietly skipped where there is none), then runs the command
_MOUNT_CGROUP2 = 'mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null; exec "$@"'


def as_node(ns: str) -> list[str]:
    """The command prefix that runs a daemon as a node: in network namespace ``ns``, seeing the cgroup2 hierarchy."""
    return ["ip", "netns", "exec", ns, "sh", "-c", _MOUNT_CGROUP2, "sh"]
