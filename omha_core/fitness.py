"""The fitness hook, contained: which groups this node vetoes for itself, and which plugins failed deciding it.

A fitness plugin is often a few lines of site code. When it raises, the node must not stop heartbeating (the
others would declare it lost and fence a healthy node): the failure counts as a veto of the group on this node
("plugin X failed: ...", the safe reading of "I cannot tell whether this node is fit"), is logged once per
change with the plugin's name, and is published in the node's status (``plugin_errors``) for ``omha status``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pluggy

from omha_core import hooks

log = logging.getLogger("omha.fitness")


class Fitness:
    """Calls ``omha_node_fitness`` for this node; remembers the failures for status and logs their changes."""

    def __init__(self, pm: pluggy.PluginManager, node: str, config: Any) -> None:
        self.pm = pm
        self.node = node
        self.config = config
        #: plugin name -> "plugin X failed: ..." (the latest failure), while it keeps failing
        self.errors: dict[str, str] = {}
        self._logged: dict[tuple[str, str], str] = {}
        #: what the latest :meth:`check` found (None before the first)
        self._latest: dict[str, str] | None = None

    def check(self, groups: Iterable[str]) -> dict[str, str]:
        """Group -> the reason this node is unfit for it (vetoes and failures of the plugins)."""
        unfit: dict[str, str] = {}
        errors: dict[str, str] = {}
        failing: dict[tuple[str, str], str] = {}
        for group in groups:
            vetoes, failures = hooks.node_fitness(self.pm, group=group, node=self.node, config=self.config)
            reasons = [f"{reason} ({plugin})" for plugin, reason in vetoes]
            for plugin, error in failures:
                message = f"plugin {plugin} failed: {error}"
                reasons.append(message)
                errors[plugin] = message
                failing[(plugin, group)] = message
            if reasons:
                unfit[group] = "; ".join(reasons)
        for (plugin, group), message in failing.items():
            if self._logged.get((plugin, group)) != message:
                log.error("%s: omha_node_fitness %s; counted as a veto of this node", group, message)
        for plugin, group in set(self._logged) - set(failing):
            log.info("%s: plugin %s's omha_node_fitness works again", group, plugin)
        self._logged = failing
        self.errors = errors
        self._latest = unfit
        return unfit

    def latest(self, groups: Iterable[str]) -> dict[str, str]:
        """What the latest :meth:`check` found, asking now only if it never ran: the status publishes what the
        cycle's decision saw, without asking the plugins a second time in the same cycle."""
        return self._latest if self._latest is not None else self.check(groups)
