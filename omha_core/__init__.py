"""omha: a cluster-wide init. Public API.

``from omha_core import HA; ha = HA("/etc/omha/omha.toml"); ha.tell("foo", "run"); ha.status()``
mirrors OpenMosix::HA's synopsis. Plugin authors need :data:`hookimpl` and the base classes in
:mod:`omha_core.resources`, :mod:`omha_core.fence_devices` and :mod:`omha_core.backends`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omha_core._version import __version__

if TYPE_CHECKING:
    from omha_core.api import HA
    from omha_core.hookspecs import HookimplMarker

    hookimpl: HookimplMarker

__all__ = ["HA", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # Resolved on first use, so that `import omha_core` (and `omha --help`) stays cheap: HA pulls in the store and
    # config machinery. hookimpl is defined beside the hookspecs; this is its old import path.
    if name == "hookimpl":
        from omha_core.hookspecs import hookimpl

        globals()["hookimpl"] = hookimpl
        return hookimpl
    if name == "HA":
        from omha_core.api import HA

        return HA
    raise AttributeError(name)
