"""What the CLI, the Python API (:mod:`omha_core.api`) and the web page share to act on a cluster through its
store: opening the configured store, and ``tell`` (a group's wanted level, in hactl).

Kept out of the CLI modules so that the API and the daemon's web page do not import the CLI, and so that the
store is opened in one place. Imports are deferred to the call: the CLI imports this on every command.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omha_core.backends import Store
    from omha_core.config import Config


def open_store(config: Config, pm: Any) -> Store:
    """The store ``[cluster] store`` names, from the plugin that provides it, opened."""
    from omha_core.hooks import store_backend

    store: Store = store_backend(pm, config.section("cluster")["store"])(config)
    store.open()
    return store


def tell(store: Store, group: str, level: str, attempts: int = 10) -> str:
    """Set ``group``'s wanted level in hactl (``stop`` stops it everywhere); returns the new version.

    Read-modify-write with compare-and-swap: a concurrent change by another operator is re-read and merged
    rather than overwritten.
    """
    from omha_core.cltab import LEVEL_RE, NAME_RE, NAME_RULE
    from omha_core.errors import ConflictError, OmhaError
    from omha_core.hactl import set_hactl_level
    from omha_core.report import newest_valid_hactl

    if not NAME_RE.match(group):
        raise OmhaError(f"group {group!r} must be {NAME_RULE}")
    if not LEVEL_RE.match(level):
        raise OmhaError(f"level {level!r} must be {NAME_RULE} and ','")
    for _ in range(attempts):
        docs = store.documents("hactl")
        _, version, errors = newest_valid_hactl(store)
        current = next((d for d in docs if d.version == version), None)
        if errors and current is not docs[0]:
            raise OmhaError("the newest hactl is invalid; fix it first (omha check):\n  " + "\n  ".join(errors))
        text = set_hactl_level(current.text if current else "", group, level)
        try:
            # "" when there is no hactl yet: a first write must not silently replace another first write
            return store.put_document("hactl", text, docs[0].version if docs else "")
        except ConflictError:
            time.sleep(0.05)
    raise OmhaError(f"hactl kept changing under us; {group} was not set to {level}; try again")
