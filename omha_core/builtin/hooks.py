"""The built-in plugins' registration hooks, kept apart from their implementations so that registering them
(which every command does) imports none of them: each value names its class for :class:`omha_core.lazy.Lazy`.

:data:`omha_core.plugins.BUILTIN_PLUGINS` pairs each of these namespaces with the module it stands for
(``omha plugins`` reports that module).
"""

from __future__ import annotations

from typing import Any

from omha_core.hookspecs import hookimpl
from omha_core.lazy import Lazy


class sharedfs:
    """``omha_core.builtin.sharedfs``: the shared-directory store and membership."""

    @staticmethod
    @hookimpl
    def omha_store_backends() -> dict[str, Any]:
        return {"sharedfs": Lazy("omha_core.builtin.sharedfs:SharedDirStore")}

    @staticmethod
    @hookimpl
    def omha_membership_backends() -> dict[str, Any]:
        return {"sharedfs": Lazy("omha_core.builtin.sharedfs:SharedDirMembership")}


class fence_command:
    """``omha_core.builtin.fence_command``: the ``command`` fence device."""

    @staticmethod
    @hookimpl
    def omha_fence_devices() -> dict[str, Any]:
        return {"command": Lazy("omha_core.builtin.fence_command:CommandDevice")}


class fence_agent:
    """``omha_core.builtin.fence_agent``: the ``fence_agent`` device (ClusterLabs fence agents)."""

    @staticmethod
    @hookimpl
    def omha_fence_devices() -> dict[str, Any]:
        return {"fence_agent": Lazy("omha_core.builtin.fence_agent:FenceAgentDevice")}


class file_agent:
    """``omha_core.builtin.file_agent``: the ``@file`` resource agent."""

    @staticmethod
    @hookimpl
    def omha_resource_agents() -> dict[str, Any]:
        return {"file": Lazy("omha_core.builtin.file_agent:FileAgent")}
