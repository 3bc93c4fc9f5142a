"""The node daemon (``omha daemon``), one module per collaborator along the failover path.

- :mod:`~omha_core.node.daemon`: :class:`Daemon`, the loop: observe, decide, act, publish;
- :mod:`~omha_core.node.peers`: observing the other nodes (statuses, liveness, the lost ones holding groups);
- :mod:`~omha_core.node.documents`: following cltab and hactl in the store;
- :mod:`~omha_core.node.act`: carrying out the decisions (claims, the local init);
- :mod:`~omha_core.node.publish`: this node's status document;
- :mod:`~omha_core.node.contact`: the store's reach and the isolation watchdog;
- :mod:`~omha_core.node.lifecycle`: waiting out a previous incarnation, the graceful shutdown;
- :mod:`~omha_core.node.control`: the unix control socket;
- :mod:`~omha_core.node.connect`: opening the store and membership backends;
- :mod:`~omha_core.node.state`: the timing settings and the decisions' memory.

The decisions themselves are pure functions elsewhere: :func:`omha_core.decide.decide`, :mod:`omha_core.rules`
and the fence state machine (:mod:`omha_core.fencing.machine`).
"""

from omha_core.node.connect import open_backends
from omha_core.node.daemon import Daemon, run_daemon

__all__ = ["Daemon", "open_backends", "run_daemon"]
