"""Opening the configured store and membership backends, as the daemon does at start-up.

The daemon waits for a store that does not answer yet; the CLI and the API open the store alone, through
:func:`omha_core.control.open_store`.
"""

from __future__ import annotations

import contextlib
import logging
import time

import pluggy

from omha_core import hooks
from omha_core.backends import Membership, Store
from omha_core.config import Config
from omha_core.errors import OmhaError, StoreUnavailable

log = logging.getLogger("omha.daemon")


def open_backends(
    config: Config, pm: pluggy.PluginManager, wait_every: float | None = None
) -> tuple[Store, Membership]:
    """Instantiate and open the configured store and membership backends.

    With ``wait_every`` (the daemon at start-up), a store that does not answer (:class:`StoreUnavailable`: etcd
    down or out of reach) is tried again every ``wait_every`` seconds until it does: nothing runs on this node
    before it has joined, so waiting is safe, and exiting would only make a supervisor restart us in a loop. Any
    other error (a refusal, a duplicate node, a plugin's bug) still stops the start."""
    announced = ""
    while True:
        try:
            return _open_backends(config, pm)
        except StoreUnavailable as exc:
            if wait_every is None:
                raise
            if str(exc) != announced:
                log.warning("waiting for the store: %s", exc)
                announced = str(exc)
            time.sleep(wait_every)


def _open_backends(config: Config, pm: pluggy.PluginManager) -> tuple[Store, Membership]:
    cluster = config.section("cluster")
    store_factory = hooks.store_backend(pm, cluster["store"])
    mem_factory = hooks.membership_backend(pm, cluster["membership"])
    store: Store | None = None
    try:
        store = store_factory(config)
        store.open()
        membership: Membership = mem_factory(config, store)
        membership.open()
    except OmhaError:
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()  # its connections, before a retry opens new ones
        raise
    except Exception as exc:  # a backend plugin's bug: a clear message at start-up rather than a traceback
        which = f"store {cluster['store']!r} / membership {cluster['membership']!r}"
        raise OmhaError(f"cannot open the {which} backends: {type(exc).__name__}: {exc}") from exc
    return store, membership
