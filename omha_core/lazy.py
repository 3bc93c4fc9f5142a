"""A registration value that is imported only when used (issue 19, CLI start-up).

A plugin's registration hook (``omha_resource_agents``, ``omha_fence_devices``, ...) may return
``{"vip": Lazy("omha_resource_vip.agent:VipAgent")}`` instead of the class itself, so that calling the hook (which
``omha plugins`` does for every plugin, to report the broken ones) imports nothing. :func:`omha_core.plugins.registry`
resolves it when the configuration or a command needs it; an import that fails there marks the plugin broken, as
a registration hook that raises does. Plain classes and factories keep working.
"""

from __future__ import annotations

from typing import Any


class Lazy:
    """``"module:attribute"`` (the attribute may be dotted), imported on :meth:`load`."""

    __slots__ = ("ref",)

    def __init__(self, ref: str) -> None:
        if ":" not in ref:
            raise ValueError(f"Lazy({ref!r}): expected 'module:attribute'")
        self.ref = ref

    def load(self) -> Any:
        """Import the module and return the attribute."""
        import importlib

        module, _, attribute = self.ref.partition(":")
        obj: Any = importlib.import_module(module)
        for part in attribute.split("."):
            obj = getattr(obj, part)
        return obj

    def __repr__(self) -> str:
        return f"Lazy({self.ref!r})"
