"""The plugin contract: every hook omha calls, grouped by phase.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` (``from omha_core.hookspecs
import hookimpl``; ``from omha_core import hookimpl`` is the same object) whose names match
the specifications below, published under the entry-point group ``omha``::

    [project.entry-points.omha]
    my_site = "my_site_plugin"

Rules that keep plugins compatible across releases:

- Every hook is prefixed ``omha_``. Hook signatures only ever grow new arguments; an implementation may accept
  fewer arguments than the specification names.
- ``omha_*s`` registration hooks (``omha_resource_agents``, ``omha_fence_devices``, ...) return a dict of
  *name -> class or factory*; the core merges them and instantiates what ``omha.toml`` names. Two plugins
  registering one name is an error that names both. A value may be given as
  ``omha_core.lazy.Lazy("module:attribute")``: it is imported only when used, so that listing plugins (``omha
  plugins``, which calls every registration hook) imports none of their classes; an import that fails then
  marks the plugin broken, as a hook that raises does.
- Results that matter (fitness vetoes, fencing) are traced to the plugin that produced them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import voluptuous as vol

    from omha_core.backends import Membership, Store
    from omha_core.config import Config
    from omha_core.fence_devices import FenceDevice, FenceResult
    from omha_core.resources import ResourceAgent

_F = TypeVar("_F", bound=Callable[..., Any])


class HookspecMarker:
    """``pluggy.HookspecMarker("omha")`` without importing pluggy: it sets on the function the same ``omha_spec``
    options, which pluggy's ``PluginManager.add_hookspecs`` reads. Every plugin imports this module, and ``omha
    status`` and ``omha plugins`` read the registration hooks without pluggy (issue 19, CLI start-up);
    tests/core/test_plugins.py checks both markers against pluggy's own."""

    project_name = "omha"

    def __call__(self, function: _F, firstresult: bool = False, historic: bool = False) -> _F:
        if historic and firstresult:
            raise ValueError("cannot have a historic firstresult hook")
        opts = {"firstresult": firstresult, "historic": historic, "warn_on_impl": None, "warn_on_impl_args": None}
        setattr(function, self.project_name + "_spec", opts)
        return function


#: the options of ``@hookimpl``, with their defaults (pluggy's): what a bare ``@hookimpl`` sets
IMPL_OPTIONS: dict[str, Any] = {
    "wrapper": False,
    "hookwrapper": False,
    "optionalhook": False,
    "tryfirst": False,
    "trylast": False,
    "specname": None,
}


class HookimplMarker:
    """``pluggy.HookimplMarker("omha")`` without importing pluggy: it sets on the function the same ``omha_impl``
    options, which pluggy's ``PluginManager.register`` reads (see :class:`HookspecMarker`). Used bare
    (``@hookimpl``) or with options (``@hookimpl(tryfirst=True)``)."""

    project_name = "omha"

    def __call__(self, function: Callable[..., Any] | None = None, **options: Any) -> Any:
        unknown = sorted(set(options) - set(IMPL_OPTIONS))
        if unknown:
            raise TypeError(f"hookimpl() got unexpected option(s) {', '.join(unknown)}")

        def mark(func: _F) -> _F:
            setattr(func, self.project_name + "_impl", {**IMPL_OPTIONS, **options})
            return func

        return mark if function is None else mark(function)


#: marks a hook specification (the core's side of the contract)
hookspec = HookspecMarker()
#: marks a plugin's implementation of a hook; defined beside the specifications so that both sides of the
#: contract live in one module. ``omha_core.hookimpl`` and ``omha_core.metrics.hookimpl`` are this object.
hookimpl = HookimplMarker()

# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@hookspec
def omha_config_schema() -> Mapping[str, vol.Schema | Mapping[Any, Any]] | None:
    """Add sections to ``omha.toml``.

    Called once when the configuration is loaded. Results of all plugins are merged.

    :return: section name -> voluptuous schema (or dict) of that section, e.g. ``{"openmosix": {...}}``.
        A section not returned by any plugin is an unknown key.
    """


# ---------------------------------------------------------------------------------------------------------
# Backends: membership and status store
# ---------------------------------------------------------------------------------------------------------


@hookspec
def omha_store_backends() -> Mapping[str, Callable[[Config], Store]] | None:
    """Register status-store backends by name (``[cluster] store = "<name>"``).

    Called when the daemon or CLI opens the store. Results of all plugins are merged.

    :return: backend name -> factory taking the :class:`~omha_core.config.Config`.
    """


@hookspec
def omha_membership_backends() -> Mapping[str, Callable[[Config, Store], Membership]] | None:
    """Register membership backends by name (``[cluster] membership = "<name>"``).

    Called when the daemon starts. Results of all plugins are merged.

    :return: backend name -> factory taking the config and the opened store.
    """


# ---------------------------------------------------------------------------------------------------------
# Resources and fitness
# ---------------------------------------------------------------------------------------------------------


@hookspec
def omha_resource_agents() -> Mapping[str, type[ResourceAgent]] | None:
    """Register resource agents, used in cltab commands as ``@name args``.

    Called when a cltab is validated and when an agent entry runs. Results of all plugins are merged.

    :return: agent name -> :class:`~omha_core.resources.ResourceAgent` subclass.
    """


@hookspec
def omha_node_fitness(group: str, node: str, config: Config) -> str | None:
    """Veto ``node`` for ``group`` before the plan phase (maintenance windows, licences, hardware).

    Called by the daemon on its own node for every group it considers starting. Every implementation is
    called; each non-None result is a veto, reported in status with the name of the plugin that gave it.

    :param group: the resource group's name.
    :param node: this node's name.
    :param config: the node's configuration.
    :return: None when fit, else the reason the node is unfit.
    """


# ---------------------------------------------------------------------------------------------------------
# Fencing
# ---------------------------------------------------------------------------------------------------------


@hookspec
def omha_fence_devices() -> Mapping[str, type[FenceDevice]] | None:
    """Register fence device kinds (``kind = "<name>"`` in ``[[fencing.devices]]``).

    Called when the configuration is loaded (to validate each device's options against the kind's schema)
    and when a node is fenced. Results of all plugins are merged.

    :return: kind name -> :class:`~omha_core.fence_devices.FenceDevice` subclass.
    """


# ---------------------------------------------------------------------------------------------------------
# Notifications (every implementation is called; return values are ignored; exceptions are logged)
# ---------------------------------------------------------------------------------------------------------


@hookspec
def omha_node_lost(node: str, observer: str, groups: list[str]) -> None:
    """A node stopped heartbeating while the observer watched.

    Called once per loss by every surviving node that notices it.

    :param node: the lost node.
    :param observer: the node making the call.
    :param groups: the groups the lost node held.
    """


@hookspec
def omha_node_fenced(node: str, device: str, action: str, result: FenceResult) -> None:
    """A node was fenced successfully. Called once, on the node that fenced it.

    :param node: the fenced node.
    :param device: the name of the device that succeeded.
    :param action: what the device did, ``off`` or ``reboot`` (a device may override the cluster's action).
    :param result: the device's result (``verified`` tells whether the state was read back).
    """


@hookspec
def omha_fence_failed(node: str, errors: list[str]) -> None:
    """Every configured device failed to fence ``node``; its groups stay down. Called on the fencing node,
    once per attempt.

    :param node: the node that could not be fenced.
    :param errors: one message per device tried, in order, without credentials.
    """


@hookspec
def omha_group_moved(group: str, from_node: str | None, to_node: str, level: str) -> None:
    """A group reached its wanted level on ``to_node``. Called on ``to_node``.

    :param group: the resource group.
    :param from_node: where it ran before, when known (None for a first start).
    :param to_node: this node.
    :param level: the level it reached.
    """
