"""omha: a cluster-wide init. Public API.

``from omha_core import HA; ha = HA("/etc/omha/omha.toml"); ha.tell("foo", "run"); ha.status()``
mirrors OpenMosix::HA's synopsis. Plugin authors need :data:`hookimpl` and the base classes in
:mod:`omha_core.resources`, :mod:`omha_core.fence_devices` and :mod:`omha_core.backends`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from omha_core._version import __version__

hookimpl = pluggy.HookimplMarker("omha")

if TYPE_CHECKING:
    from omha_core.api import HA

__all__ = ["HA", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # HA pulls in the store and config machinery; keep `import omha_core` cheap for the CLI and plugins.
    if name == "HA":
        from omha_core.api import HA

        return HA
    raise AttributeError(name)
