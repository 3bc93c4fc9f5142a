"""The local cluster-init (after Cluster::Init; README "Differences" lists where it differs): resource groups at
runlevels, supervised processes.

``LocalInit(cltab).tell("web", "run")`` stops the entries of ``web`` that do not match ``run``, keeps the
ones already running, starts the rest in file order; ``status()`` reports every group told. See
:mod:`omha_core.init.group` for the transition, :mod:`omha_core.init.process` for what each mode does and the
entry states, :mod:`omha_core.init.guard` for what happens to the children when the daemon dies.
"""

from omha_core.init.group import CONFIGURED, DONE, FAILED, GROUP_STATES, PASSED, STARTING, STOPPING
from omha_core.init.local import LocalInit
from omha_core.init.options import InitOptions

__all__ = [
    "CONFIGURED",
    "DONE",
    "FAILED",
    "GROUP_STATES",
    "PASSED",
    "STARTING",
    "STOPPING",
    "InitOptions",
    "LocalInit",
]
