"""The pluggy plugin manager of :func:`omha_core.plugins.get_plugin_manager`.

Apart from :mod:`omha_core.plugins` so that a command reading only the registration hooks
(:func:`omha_core.plugins.get_registrations`: ``omha status``, ``omha plugins``) imports neither pluggy nor, with
it, ``inspect`` (issue 19, CLI start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # plugins.py imports this module (when it builds a manager), not the other way round
    from omha_core.plugins import PluginInfo


class OmhaPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers what it tried to load, including failures."""

    def __init__(self) -> None:
        super().__init__("omha")
        self.infos: dict[str, PluginInfo] = {}

    def register_module(self, info: PluginInfo, module: object) -> None:
        """Register ``module`` under ``info.name`` and record which hooks it implements."""
        try:
            self.register(module, name=info.name)
        except Exception as exc:  # a plugin with a bad hook signature must not take the host down
            info.error = f"{type(exc).__name__}: {exc}"
        else:
            info.hooks = sorted(h.name for h in (self.get_hookcallers(module) or []))
        self.infos[info.name] = info
