"""The store and membership contracts: where cluster state lives and who is in the cluster.

A *store* holds what every node must see: each node's published status, the cluster's ``cltab`` and
``hactl`` (versioned; only valid versions are adopted), group claims (the atomic part of the plan phase) and
fencing records. A *membership* backend says which nodes the underlying layer considers up. The core adds its
own heartbeat judgement on top: a node is alive only while its published ``seq`` keeps changing, measured on
the observer's monotonic clock (see :mod:`omha_core.liveness`).

Backends are registered by name through ``omha_store_backends`` / ``omha_membership_backends`` and chosen by
``[cluster] store`` / ``membership`` in ``omha.toml``. Built in: ``sharedfs`` (a directory every node mounts).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from omha_core.errors import OmhaError, ParseError

if TYPE_CHECKING:
    from omha_core.config import Config

T = TypeVar("T")

#: the documents a store versions and the core adopts after validation
DOCUMENTS: tuple[str, ...] = ("cltab", "hactl")
#: the operators' standing orders (``omha move``, ``standby``, ``cleanup``): a JSON document kept through the same
#: :meth:`Store.documents` / :meth:`Store.put_document` calls as the others (see :mod:`omha_core.operator`)
OPERATOR_DOCUMENT = "operator"
#: every name :meth:`Store.documents` and :meth:`Store.put_document` accept. A store written before the operator
#: document existed may refuse it: its cluster then runs as before, without ``omha move``/``standby``/``cleanup``.
STORED_DOCUMENTS: tuple[str, ...] = (*DOCUMENTS, OPERATOR_DOCUMENT)


@dataclass(frozen=True)
class Versioned:
    """One version of a cluster document.

    :param text: the document's text.
    :param version: an opaque token that changes whenever the text changes (used for compare-and-swap).
    :param order: orders versions newest-last where a backend keeps several copies (0 where it does not).
    :param origin: where this copy came from (a node name, a path), for messages.
    """

    text: str
    version: str
    order: int = 0
    origin: str = ""


def newest_valid(
    name: str, versions: Iterable[Versioned], check: Callable[[Versioned], T], until: str | None = None
) -> tuple[tuple[Versioned, T] | None, list[str]]:
    """The newest valid version of a document, and why the newer ones were refused: the one place that decides it
    (the daemon adopting cltab and hactl, ``omha status`` reading hactl).

    ``versions`` of document ``name`` come newest first (as :meth:`Store.documents` gives them). ``check``
    returns a version's parsed form or raises :class:`~omha_core.errors.OmhaError` (a
    :class:`~omha_core.errors.ParseError` with its problems) for an invalid one. The scan stops at version
    ``until`` (the one already adopted): then nothing is found, only the errors of the newer versions refused."""
    errors: list[str] = []
    for doc in versions:
        if until is not None and doc.version == until:
            break
        try:
            return (doc, check(doc)), errors
        except ParseError as exc:
            errors.extend(str(p) for p in exc.problems)
        except OmhaError as exc:
            errors.append(f"{doc.origin or name}: {exc}")
    return None, errors


class Store(ABC):
    """Base class of status stores. Methods raise :class:`omha_core.errors.StoreError` on I/O failure.

    The methods that raise :class:`NotImplementedError` here are abstract: a backend lacking one is refused when
    its plugin's ``omha_store_backends`` is read (see :func:`omha_core.plugins.registry`), not at first use."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def open(self) -> None:  # noqa: B027
        """Connect / create what is needed. Called once before any other method."""

    def close(self) -> None:  # noqa: B027
        """Release connections and leases. Called once at shutdown."""

    # -- node status ------------------------------------------------------------------------------------
    @abstractmethod
    def publish(self, node: str, status: Mapping[str, Any]) -> None:
        """Publish ``node``'s status document atomically (readers never see a partial write)."""
        raise NotImplementedError

    @abstractmethod
    def statuses(self) -> dict[str, Mapping[str, Any] | Exception]:
        """Every node's last published status; a document that cannot be decoded maps to the exception."""
        raise NotImplementedError

    def forget(self, node: str) -> None:  # noqa: B027
        """Remove ``node``'s published status (operator clean-up of a decommissioned node)."""

    # -- cluster documents ------------------------------------------------------------------------------
    @abstractmethod
    def documents(self, name: str) -> list[Versioned]:
        """Candidate versions of ``name`` (one of :data:`STORED_DOCUMENTS`), newest first. For ``cltab`` and
        ``hactl`` the core adopts the first valid one; for the operator document it reads the first it can parse.
        An empty list when the document was never written."""
        raise NotImplementedError

    def adopt(self, name: str, doc: Versioned) -> None:  # noqa: B027
        """Called after the core adopted ``doc`` (backends that replicate copies, like openMosix MFS)."""

    @abstractmethod
    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        """Write a new version and return its token.

        ``expect_version`` makes the write a compare-and-swap, so that two writers who read the same version
        cannot overwrite each other silently: a version token means "only if the current version is still this
        one", ``""`` means "only if the document does not exist yet" (the first write of a new cluster races
        like any other), and ``None`` writes unconditionally. A failed comparison raises
        :class:`omha_core.errors.ConflictError`."""
        raise NotImplementedError

    # -- claims -----------------------------------------------------------------------------------------
    @abstractmethod
    def claim(self, group: str, node: str, incarnation: str) -> bool:
        """Atomically claim ``group`` for ``node`` if nobody holds it (create-if-absent). True if held now
        by this node (also when it already held it)."""
        raise NotImplementedError

    @abstractmethod
    def claims(self) -> dict[str, Mapping[str, Any]]:
        """Current claims: group -> ``{"node": ..., "incarnation": ...}``."""
        raise NotImplementedError

    @abstractmethod
    def release_claim(self, group: str, node: str) -> None:
        """Drop ``node``'s claim on ``group``; no-op when another node holds it."""
        raise NotImplementedError

    @abstractmethod
    def break_claim(self, group: str, holder: str) -> None:
        """Remove a claim held by ``holder`` (a lost node, after it was fenced). No-op if held by another."""
        raise NotImplementedError

    # -- fencing ----------------------------------------------------------------------------------------
    @abstractmethod
    def fence_lock(self, node: str, incarnation: str, fencer: str) -> bool:
        """Atomically become the one survivor that fences ``node``'s ``incarnation`` (create-if-absent).
        True when ``fencer`` holds the lock."""
        raise NotImplementedError

    def fence_lock_holder(self, node: str, key: str) -> str | None:
        """Who holds the fence lock ``(node, key)`` taken with :meth:`fence_lock`, or None if nobody / unknown.
        Lets a survivor take over fencing when the first fencer died before publishing a result."""
        return None

    @abstractmethod
    def put_fence_record(self, node: str, record: Mapping[str, Any]) -> None:
        """Publish the outcome of fencing ``node`` (who, when, device, result, incarnation)."""
        raise NotImplementedError

    @abstractmethod
    def fence_records(self) -> dict[str, Mapping[str, Any]]:
        """The last fence record of each node."""
        raise NotImplementedError

    # -- events -----------------------------------------------------------------------------------------
    def wait_for_change(self, timeout: float) -> None:
        """Block until something in the store changed or ``timeout`` seconds passed (polling stores sleep)."""
        time.sleep(timeout)


class Membership(ABC):
    """Base class of membership backends.

    :meth:`up_nodes` is abstract: every backend must say whether it has a view of its own (``None`` when the
    heartbeats alone decide); the other methods have working defaults."""

    #: True when :meth:`up_nodes` is proof of life kept by each node's own daemon (an etcd lease): then a node
    #: is lost exactly when it leaves ``up_nodes()``, not when its status looks stale, so that a group is never
    #: taken over while its holder can still prove membership. False (default) when the layer's view is only a
    #: hint (openMosix's kernel table counts nodes whose daemon is dead): then a node must also heartbeat.
    authoritative: bool = False

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    def open(self) -> None:  # noqa: B027
        """Join the cluster (start a lease, ...). Called after the store is open."""

    def close(self) -> None:  # noqa: B027
        """Leave the cluster."""

    def heartbeat(self) -> None:  # noqa: B027
        """Called every cycle before publishing status (keep a lease alive, ...)."""

    def is_member(self) -> bool:
        """False when this node can no longer prove it belongs to the cluster (lost lease): it must stop
        its groups. Must not block: the daemon's watchdog calls it from the event loop."""
        return True

    def local_node(self) -> str | None:
        """This node's name as the membership layer knows it (openMosix: the node number), used when
        ``omha.toml`` sets no ``node``; None to fall back to the host name."""
        return None

    @abstractmethod
    def up_nodes(self) -> set[str] | None:
        """Nodes the membership layer sees up, or None when it has no view of its own (heartbeats decide)."""
        return None
