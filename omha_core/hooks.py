"""Typed accessors for every hook the core calls, so that call sites name a function, not a hook-name string.

A misspelt hook name at a call site used to be found only when the call ran (``getattr(pm.hook, ...)``); here
each hook has one function whose name and signature mypy checks, and the hook-name strings live in this module
alone. The containment rules: a registration hook that raises marks its plugin broken and is skipped
(:func:`~omha_core.plugins.registry`); every implementation of a notification is called even if another raised,
and each failure is logged with its plugin's name (:func:`notify`); a fitness implementation that raises is
reported to the caller, which counts it as a veto (:func:`call_each`).

Nothing here imports the daemon, asyncio or voluptuous: the CLI and the agent child process use it too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from omha_core.errors import ConfigError
from omha_core.plugins import CONTRACTS, lookup, plugin_error, registry

if TYPE_CHECKING:
    from collections.abc import Callable

    import pluggy

    from omha_core.backends import Membership, Store
    from omha_core.config import Config
    from omha_core.fence_devices import FenceDevice, FenceResult
    from omha_core.plugins import PluginHost
    from omha_core.resources import ResourceAgent

#: name -> (what was registered, the plugin that registered it)
Registry = dict[str, tuple[Any, str]]

# -- registration hooks: the merged name -> (object, plugin) maps --------------------------------------------


def config_schemas(pm: PluginHost) -> Registry:
    """``omha.toml`` sections added by plugins: section -> (schema, plugin)."""
    return registry(pm, "omha_config_schema")


def store_backends(pm: PluginHost) -> Registry:
    """Status-store backends: name -> (factory taking the config, plugin)."""
    return registry(pm, "omha_store_backends")


def membership_backends(pm: PluginHost) -> Registry:
    """Membership backends: name -> (factory taking the config and the store, plugin)."""
    return registry(pm, "omha_membership_backends")


def resource_agents(pm: PluginHost) -> Registry:
    """Resource agents: name -> (:class:`~omha_core.resources.ResourceAgent` subclass, plugin)."""
    return registry(pm, "omha_resource_agents")


def fence_devices(pm: PluginHost) -> Registry:
    """Fence device kinds: kind -> (:class:`~omha_core.fence_devices.FenceDevice` subclass, plugin)."""
    return registry(pm, "omha_fence_devices")


# -- one registered thing by name (a ConfigError listing what is installed when it is missing) -----------------


def store_backend(pm: PluginHost, name: str) -> Callable[[Config], Store]:
    """The factory of the store backend ``name`` (``[cluster] store``); what it builds is checked to be a
    :class:`~omha_core.backends.Store` (see :func:`_checked_factory`)."""
    return _checked_factory(pm, "omha_store_backends", name, "store backend")


def membership_backend(pm: PluginHost, name: str) -> Callable[[Config, Store], Membership]:
    """The factory of the membership backend ``name`` (``[cluster] membership``); what it builds is checked to
    be a :class:`~omha_core.backends.Membership`."""
    return _checked_factory(pm, "omha_membership_backends", name, "membership backend")


def _checked_factory(pm: PluginHost, hook: str, name: str, what: str) -> Any:
    """``name``'s factory from ``hook``, wrapped so that an object it builds that is not an instance of the hook's
    base class is a :class:`ConfigError` naming the backend and its plugin.

    A backend registered as a class is checked when the hook is read (:func:`omha_core.plugins.registry`); one
    registered as a factory function can only be checked once it has built something, which is at start-up,
    before the daemon uses it: still not at the first failover."""
    factory = lookup(pm, hook, name, what)
    if isinstance(factory, type):
        return factory  # checked at registration
    plugin = registry(pm, hook)[name][1]

    def build(*args: Any) -> Any:
        built = factory(*args)
        modname, clsname = CONTRACTS[hook]
        base = getattr(importlib.import_module(modname), clsname)
        if not isinstance(built, base):
            kind = f"{type(built).__module__}.{type(built).__qualname__}"
            raise ConfigError(f"{what} {name!r} of plugin {plugin!r} built a {kind}, not a {modname}.{clsname}")
        return built

    return build


def resource_agent(pm: PluginHost, name: str) -> type[ResourceAgent]:
    """The agent class of ``@name``."""
    cls: type[ResourceAgent] = lookup(pm, "omha_resource_agents", name, "resource agent")
    return cls


def fence_device(pm: PluginHost, kind: str) -> type[FenceDevice]:
    """The device class of ``kind``."""
    cls: type[FenceDevice] = lookup(pm, "omha_fence_devices", kind, "fence device kind")
    return cls


# -- fitness ------------------------------------------------------------------------------------------------


def node_fitness(
    pm: pluggy.PluginManager, group: str, node: str, config: Config
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Ask every plugin whether ``node`` may host ``group``: ``(vetoes, failures)``, each a list of
    (plugin, reason) / (plugin, ``"ExcType: message"``). The caller counts a failure as a veto."""
    return call_each(pm, "omha_node_fitness", group=group, node=node, config=config)


# -- notifications (every implementation called; failures logged with the plugin's name) ----------------------


def notify_node_lost(pm: pluggy.PluginManager, node: str, observer: str, groups: list[str]) -> None:
    """Tell the plugins that ``node`` stopped heartbeating while ``observer`` watched."""
    notify(pm, "omha_node_lost", node=node, observer=observer, groups=groups)


def notify_node_fenced(pm: pluggy.PluginManager, node: str, device: str, action: str, result: FenceResult) -> None:
    """Tell the plugins that ``device`` fenced ``node`` (``action`` is what it did)."""
    notify(pm, "omha_node_fenced", node=node, device=device, action=action, result=result)


def notify_fence_failed(pm: pluggy.PluginManager, node: str, errors: list[str]) -> None:
    """Tell the plugins that every device failed to fence ``node``."""
    notify(pm, "omha_fence_failed", node=node, errors=errors)


def notify_group_moved(pm: pluggy.PluginManager, group: str, from_node: str | None, to_node: str, level: str) -> None:
    """Tell the plugins that ``group`` reached ``level`` on ``to_node``."""
    notify(pm, "omha_group_moved", group=group, from_node=from_node, to_node=to_node, level=level)


# -- calling every implementation, each contained ------------------------------------------------------------


def call_each(
    pm: pluggy.PluginManager, hook: str, **kwargs: Any
) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """Call every implementation of ``hook``, one by one, each contained.

    pluggy's own call stops at the first implementation that raises; here one plugin's exception never keeps
    the others from being called. Returns ``(results, failures)``: (plugin name, result) for each non-None
    result, and (plugin name, ``"ExcType: message"``) for each implementation that raised. Logging the failures
    is the caller's business (it knows how often the hook is called)."""
    out: list[tuple[str, Any]] = []
    failures: list[tuple[str, str]] = []
    for impl in getattr(pm.hook, hook).get_hookimpls():
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        try:
            result = impl.function(**args)
        except Exception as exc:
            failures.append((impl.plugin_name, f"{type(exc).__name__}: {exc}"))
            continue
        if result is not None:
            out.append((impl.plugin_name, result))
    return out, failures


def call_tagged(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
    """Call every implementation of ``hook``; return (plugin name, result) for each non-None result.
    An implementation that raises is logged with its plugin's name and skipped (see :func:`call_each`)."""
    out, failures = call_each(pm, hook, **kwargs)
    for plugin, error in failures:
        plugin_error("plugin %s: %s failed: %s", plugin, hook, error)
    return out


def notify(pm: pluggy.PluginManager, hook: str, **kwargs: Any) -> None:
    """Call every implementation of a notification hook; each one that raises is logged with its plugin's
    name, and the others are still called (what hookspecs.py promises)."""
    _, failures = call_each(pm, hook, **kwargs)
    for plugin, error in failures:
        plugin_error("plugin %s: %s failed: %s", plugin, hook, error)
