"""Building the plugin manager: hook specifications, then builtin plugins, then installed entry points.

Nothing is loaded at import time: :func:`get_plugin_manager` does the work when called, and caches nothing
globally, so tests get a fresh manager each time. A plugin that fails to import is recorded in
:attr:`PluginInfo.error` and skipped; only a plugin the configuration actually needs is fatal, later, with a
message naming it. ``OMHA_BLOCK_PLUGINS=name1,name2`` keeps named plugins (entry-point names) from loading;
``OMHA_AUTOLOAD_PLUGINS=0`` loads builtins only.

:func:`get_registrations` loads the same plugins for a command that reads only the registration hooks (``omha
status``, ``omha plugins``), without pluggy when pluggy could not refuse any of them (issue 19, CLI start-up):
neither this module nor :mod:`omha_core.hookspecs` imports pluggy; :mod:`omha_core.plugin_manager` does.
"""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from omha_core import hookspecs
from omha_core.entrypoints import entry_points
from omha_core.errors import ConfigError
from omha_core.lazy import Lazy

if TYPE_CHECKING:
    from typing import TypeAlias

    import pluggy

    from omha_core.plugin_manager import OmhaPluginManager

ENTRY_POINT_GROUP = "omha"


def __getattr__(name: str) -> Any:
    # ``from omha_core.plugins import OmhaPluginManager`` (tests, omha_testing) keeps working; importing it from
    # here when named, not at import, keeps pluggy out of the commands that do not need it
    if name == "OmhaPluginManager":
        from omha_core.plugin_manager import OmhaPluginManager

        return OmhaPluginManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plugin_error(message: str, *args: object) -> None:
    """Log an error as ``omha.plugins``; logging (with traceback and tokenize, ~5 ms) is imported only when a
    plugin fails, not by every command that lists or loads plugins (issue 19, CLI start-up)."""
    import logging

    logging.getLogger("omha.plugins").error(message, *args)


#: the core's own behaviour, registered exactly like external plugins
BUILTIN_PLUGINS: tuple[str, ...] = (
    "omha_core.builtin.sharedfs",
    "omha_core.builtin.fence_command",
    "omha_core.builtin.fence_agent",
    "omha_core.builtin.file_agent",
)


class PluginInfo:
    """What ``omha plugins`` reports about one plugin. (A plain class, not a dataclass: ``omha plugins`` imports
    neither dataclasses nor inspect, issue 19.)"""

    def __init__(
        self,
        name: str,
        module: str,
        distribution: str | None = None,
        version: str | None = None,
        builtin: bool = False,
        hooks: list[str] | None = None,
        error: str | None = None,
    ) -> None:
        self.name, self.module, self.distribution, self.version = name, module, distribution, version
        self.builtin = builtin
        self.hooks: list[str] = [] if hooks is None else hooks
        self.error = error

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "builtin": self.builtin,
            "hooks": self.hooks,
            "error": self.error,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PluginInfo) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"PluginInfo({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"


def _blocked() -> set[str]:
    return {n.strip() for n in os.environ.get("OMHA_BLOCK_PLUGINS", "").split(",") if n.strip()}


def _discover(extra: Iterable[object] = ()) -> list[tuple[PluginInfo, object | None]]:
    """Every plugin to register, in registration order, with its object: builtins, installed entry points (each
    imported here; one that fails to import comes with None and its error recorded), then ``extra``."""
    from omha_core._version import __version__
    from omha_core.builtin import hooks

    found: list[tuple[PluginInfo, object | None]] = []
    for modname in BUILTIN_PLUGINS:
        short = modname.rsplit(".", 1)[1]
        info = PluginInfo(
            name=f"builtin.{short}", module=modname, distribution="omha-core", version=__version__, builtin=True
        )
        # the module's registration hooks live in builtin/hooks.py, which names its classes lazily
        found.append((info, getattr(hooks, short)))
    blocked = _blocked()
    if os.environ.get("OMHA_AUTOLOAD_PLUGINS", "1") != "0":
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or any(i.name == ep.name for i, _ in found):
                continue
            info = PluginInfo(name=ep.name, module=ep.value, distribution=ep.distribution, version=ep.version)
            try:
                found.append((info, ep.load()))
            except Exception as exc:  # ImportError and anything a broken plugin raises at import
                info.error = f"{type(exc).__name__}: {exc}"
                found.append((info, None))
    for obj in extra:
        name = getattr(obj, "__name__", None) or type(obj).__name__
        found.append((PluginInfo(name=name, module=name), obj))
    return found


def get_plugin_manager(extra: Iterable[object] = ()) -> OmhaPluginManager:
    """Return a new plugin manager with builtins, installed entry points and ``extra`` plugin objects."""
    return _pluggy_manager(_discover(extra))


def _pluggy_manager(plugins: list[tuple[PluginInfo, object | None]]) -> OmhaPluginManager:
    from omha_core.plugin_manager import OmhaPluginManager

    pm = OmhaPluginManager()
    pm.add_hookspecs(hookspecs)
    for info, plugin in plugins:
        if plugin is None:
            pm.infos[info.name] = info
        else:
            pm.register_module(info, plugin)
    return pm


class Registrations:
    """The installed plugins' registration hooks (``omha_store_backends``, ...), read without pluggy.

    What :func:`get_registrations` returns when pluggy would register every plugin as it is: ``infos`` as the
    plugin manager's, and each registration hook's implementations in registration order. :func:`registry`,
    :func:`lookup` and the registration accessors of :mod:`omha_core.hooks` take it as they take the manager;
    nothing else does (a command that calls other hooks uses :func:`get_plugin_manager`)."""

    def __init__(self) -> None:
        self.infos: dict[str, PluginInfo] = {}
        self.impls: dict[str, list[tuple[str, Callable[..., Any]]]] = {}


if TYPE_CHECKING:
    #: what the registration-hook readers take: the pluggy manager, or the plugins read without it
    PluginHost: TypeAlias = "pluggy.PluginManager | Registrations"

_ABSENT = object()
#: where ``@hookimpl`` puts its options (:data:`omha_core.hookspecs.IMPL_OPTIONS`), as pluggy's marker does
_IMPL_ATTR = hookspecs.HookimplMarker.project_name + "_impl"


def _plain_impls(plugin: object) -> dict[str, Callable[..., Any]] | None:
    """``plugin``'s hook implementations (hook name -> function, in ``dir()`` order, as pluggy registers them)
    when each is one pluggy accepts without question: a plain function (or a class's staticmethod) marked by a
    bare ``@hookimpl``, taking no argument, for a registration hook (whose specification takes none). None when
    the plugin is anything else (another hook, options, arguments, a decorated or bound function, an object that
    is not a module or class): only pluggy's own checks can say then whether it registers (its signature
    checks need ``inspect``), so the caller loads pluggy."""
    namespaces: list[Mapping[str, Any]]
    if isinstance(plugin, types.ModuleType):
        namespaces = [vars(plugin)]
    elif isinstance(plugin, type):
        namespaces = [vars(cls) for cls in plugin.__mro__]
    else:
        return None
    found: dict[str, Callable[..., Any]] = {}
    try:
        for name in dir(plugin):
            raw = next((ns[name] for ns in namespaces if name in ns), _ABSENT)
            if raw is _ABSENT:  # a name only dir() or __getattr__ knows: pluggy decides
                return None
            if raw is None or isinstance(raw, type) or not (callable(raw) or hasattr(raw, "__func__")):
                continue
            opts = getattr(raw, _IMPL_ATTR, None)
            if opts is None:
                opts = getattr(getattr(raw, "__func__", None), _IMPL_ATTR, None)
            if opts is None:
                continue  # not an implementation, for any pluggy
            func = raw.__func__ if isinstance(raw, staticmethod) else raw
            if (
                opts != hookspecs.IMPL_OPTIONS
                or name not in REGISTRATION_HOOKS
                or type(func) is not types.FunctionType
                or func.__code__.co_argcount
                or func.__code__.co_kwonlyargcount
                or hasattr(func, "__wrapped__")
                or hasattr(func, "__signature__")
            ):
                return None
            found[name] = func
    except Exception:  # a module whose dir() or attributes raise: pluggy decides
        return None
    return found


def get_registrations() -> Registrations | OmhaPluginManager:
    """The plugins of :func:`get_plugin_manager` (the same discovery, order and errors) for a command that reads
    only the registration hooks: read without pluggy when every plugin passes :func:`_plain_impls`, so that
    ``omha status`` and ``omha plugins`` import neither pluggy nor ``inspect`` (issue 19); otherwise the pluggy
    manager, whose checks then decide (a plugin it refuses is reported as it always was)."""
    plugins = _discover()
    reg = Registrations()
    seen: set[int] = set()
    for info, plugin in plugins:
        if plugin is None:
            reg.infos[info.name] = info
            continue
        impls = _plain_impls(plugin)
        if impls is None or id(plugin) in seen:  # pluggy refuses an object registered twice
            return _pluggy_manager(plugins)
        seen.add(id(plugin))
        info.hooks = sorted(impls)
        reg.infos[info.name] = info
        for hook, func in impls.items():
            reg.impls.setdefault(hook, []).append((info.name, func))
    return reg


#: registration hook -> (module, class name) of the base class its values must subclass (a value that is not a class
#: is a factory, checked when the core calls it). Named, not imported: the bases are imported only when the hook
#: is read, so that loading the plugins stays cheap (issue 19).
CONTRACTS: dict[str, tuple[str, str]] = {
    "omha_store_backends": ("omha_core.backends", "Store"),
    "omha_membership_backends": ("omha_core.backends", "Membership"),
    "omha_resource_agents": ("omha_core.resources", "ResourceAgent"),
    "omha_fence_devices": ("omha_core.fence_devices", "FenceDevice"),
}


def contract_violation(hook: str, key: str, value: object) -> str | None:
    """Why ``value``, registered as ``key`` through ``hook``, breaks the plugin contract, or None when it keeps it.

    A class must subclass the hook's base class and implement every abstract method of it, so that a backend,
    agent or device lacking a method the core calls is refused when its plugin registers, naming the method,
    rather than at its first failover. A non-class value (a backend factory) is not checked here."""
    if hook not in CONTRACTS or not isinstance(value, type):
        return None
    modname, clsname = CONTRACTS[hook]
    base = getattr(importlib.import_module(modname), clsname)
    if not issubclass(value, base):
        return f"{key!r} ({value.__module__}.{value.__qualname__}) is not a subclass of {modname}.{clsname}"
    missing = sorted(getattr(value, "__abstractmethods__", ()))
    if missing:
        return (
            f"{key!r} ({value.__module__}.{value.__qualname__}) does not implement "
            f"{', '.join(missing)} (required by {modname}.{clsname})"
        )
    return None


def registry(pm: PluginHost, hook: str, resolve: bool = True) -> dict[str, tuple[Any, str]]:
    """Merge a registration hook's dicts: name -> (object, plugin name). Duplicate names are an error.

    A value given as :class:`omha_core.lazy.Lazy` is imported here (``resolve=False`` leaves it as it is: ``omha
    plugins`` only needs to know the hooks answer); one that fails to import marks its plugin broken and is left
    out, like a hook that raises.

    Every class registered (a lazy one once imported) is checked against the hook's contract
    (:func:`contract_violation`): one that breaks it is left out and its plugin marked broken with the reason (the
    missing method), so that the configuration naming it fails at load with the plugin's name, never at the first
    failover.

    An implementation that raises (or returns something that is not a mapping) is skipped: its plugin is marked
    broken in :attr:`OmhaPluginManager.infos` (``omha plugins`` shows why), and :func:`lookup` names it when the
    configuration asks for something nobody else provides. One broken site plugin must not make every other
    plugin's registrations unusable."""
    merged: dict[str, tuple[Any, str]] = {}
    if isinstance(pm, Registrations):
        impls = pm.impls.get(hook, [])
    else:
        impls = [(impl.plugin_name, impl.function) for impl in getattr(pm.hook, hook).get_hookimpls()]
    for plugin_name, function in impls:  # registration order
        try:
            result = function()
            items = list((result or {}).items())
        except Exception as exc:  # a plugin's bug: report it, skip the plugin
            _mark_broken(pm, plugin_name, f"{hook} failed: {type(exc).__name__}: {exc}")
            continue
        for key, value in items:
            violation = contract_violation(hook, key, value)
            if violation is not None:
                _mark_broken(pm, plugin_name, f"{hook}: {violation}")
                continue
            if key in merged and merged[key][1] != plugin_name:
                first = merged[key][1]
                raise ConfigError(f"{hook}: {key!r} is registered by both plugin {first!r} and {plugin_name!r}")
            merged[key] = (value, plugin_name)
    if resolve:
        for key, (value, plugin) in list(merged.items()):
            if isinstance(value, Lazy):
                try:
                    loaded = value.load()
                except Exception as exc:  # ImportError and anything the plugin's module raises at import
                    _mark_broken(pm, plugin, f"{hook} {key!r} failed: {type(exc).__name__}: {exc}")
                    del merged[key]
                    continue
                violation = contract_violation(hook, key, loaded)
                if violation is not None:
                    _mark_broken(pm, plugin, f"{hook}: {violation}")
                    del merged[key]
                    continue
                merged[key] = (loaded, plugin)
    return merged


#: the registration hooks, each returning name -> class or factory (see hookspecs.py)
REGISTRATION_HOOKS = (
    "omha_config_schema",
    "omha_store_backends",
    "omha_membership_backends",
    "omha_resource_agents",
    "omha_fence_devices",
)


def probe_registrations(pm: PluginHost) -> None:
    """Call every registration hook once, so that a plugin whose registration raises is marked broken (for
    ``omha plugins``). A name registered twice is reported when the configuration uses the hook, not here."""
    for hook in REGISTRATION_HOOKS:
        try:
            registry(pm, hook, resolve=False)
        except ConfigError:
            pass


def _mark_broken(pm: PluginHost, plugin: str, error: str) -> None:
    """Record (once) and log that ``plugin`` failed in a registration hook."""
    infos = getattr(pm, "infos", None)
    info = infos.get(plugin) if isinstance(infos, dict) else None
    if info is not None and error in (info.error or ""):
        return
    plugin_error("plugin %s: %s (skipped)", plugin, error)
    if info is not None:
        info.error = f"{info.error}; {error}" if info.error else error


def broken_hint(pm: PluginHost) -> str:
    """``"; plugins that failed: X (...)"`` for error messages about something not installed, or ``""``."""
    broken = [f"{i.name} ({i.error})" for i in getattr(pm, "infos", {}).values() if i.error]
    return f"; plugins that failed to load: {', '.join(broken)} (see 'omha plugins')" if broken else ""


def lookup(pm: PluginHost, hook: str, name: str, what: str) -> Any:
    """Find ``name`` in a registration hook or raise a :class:`ConfigError` listing what is available."""
    reg = registry(pm, hook)
    if name not in reg:
        known = ", ".join(sorted(reg)) or "none"
        raise ConfigError(f"unknown {what} {name!r}: installed are {known}{broken_hint(pm)}")
    return reg[name][0]
