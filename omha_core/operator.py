"""The operators' standing orders: location preferences (``omha move``), standby nodes and clean-up requests.

They live in the store as one JSON document named :data:`~omha_core.backends.OPERATOR_DOCUMENT`, written with
the same compare-and-swap as ``cltab``/``hactl`` so that two operators never overwrite each other::

    {"schema": "omha.operator/1",
     "prefer": {"web": "n2"},                    # omha move web n2: web runs on n2 whenever n2 can run it
     "standby": ["n3"],                          # omha standby n3: n3 runs no group
     "cleanup": {"web": {"*": "<request id>"}}}  # omha cleanup web [NODE]: forget web's failures there ("*": all)

Every daemon reads it each cycle. ``prefer`` and ``standby`` are inputs of :func:`omha_core.decide.decide`; a new
clean-up request id makes the daemons it names forget the group's failed tests and retry a failed stop
(:class:`OperatorFollower`). A store that refuses the document (a third-party store written before it existed)
leaves the cluster running as before, without standing orders.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omha_core.backends import OPERATOR_DOCUMENT
from omha_core.errors import ConflictError, OmhaError, StoreError

if TYPE_CHECKING:
    import logging  # only named in annotations: omha status reads the operator state (CLI start-up, issue 19)

    from omha_core.backends import Store

SCHEMA = "omha.operator/1"
#: the key of a clean-up request that covers every node
ALL_NODES = "*"


@dataclass(frozen=True)
class OperatorState:
    """The standing orders in force (empty when none were ever given).

    :param prefer: group -> preferred node.
    :param standby: nodes that must run no group.
    :param cleanup: group -> node (or ``*``) -> id of the latest clean-up request.
    :param version: the store's version token of the document (None when absent).
    :param problem: why the document could not be read (it is then treated as empty).
    """

    prefer: Mapping[str, str] = field(default_factory=dict)
    standby: frozenset[str] = frozenset()
    cleanup: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    version: str | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The document's JSON form (without ``version``/``problem``)."""
        return {
            "schema": SCHEMA,
            "prefer": dict(sorted(self.prefer.items())),
            "standby": sorted(self.standby),
            "cleanup": {g: dict(sorted(n.items())) for g, n in sorted(self.cleanup.items())},
        }


def parse_operator(text: str, version: str | None = None) -> OperatorState:
    """Parse the document's text; raise ``ValueError`` naming what is wrong."""
    doc = json.loads(text) if text.strip() else {}
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    prefer, standby, cleanup = doc.get("prefer", {}), doc.get("standby", []), doc.get("cleanup", {})
    if not isinstance(prefer, dict) or not all(isinstance(v, str) for v in prefer.values()):
        raise ValueError("'prefer' must map group names to node names")
    if not isinstance(standby, list) or not all(isinstance(v, str) for v in standby):
        raise ValueError("'standby' must be a list of node names")
    if not isinstance(cleanup, dict) or not all(
        isinstance(v, dict) and all(isinstance(i, str) for i in v.values()) for v in cleanup.values()
    ):
        raise ValueError("'cleanup' must map group names to {node: request id}")
    return OperatorState(
        prefer={str(k): v for k, v in prefer.items()},
        standby=frozenset(standby),
        cleanup={str(g): {str(n): i for n, i in v.items()} for g, v in cleanup.items()},
        version=version,
    )


def read_operator(store: Store) -> OperatorState:
    """The newest readable version in ``store``; raises :class:`StoreError` when the store cannot keep it."""
    try:
        docs = store.documents(OPERATOR_DOCUMENT)
    except (AssertionError, NotImplementedError, KeyError, ValueError) as exc:
        raise StoreError(
            f"store {type(store).__name__} does not keep the operator document ({exc or 'refused'})"
        ) from None
    problems = []
    for doc in docs:
        try:
            return parse_operator(doc.text, doc.version)
        except ValueError as exc:
            problems.append(f"{doc.origin or OPERATOR_DOCUMENT}: {exc}")
    return OperatorState(problem="; ".join(problems) or None)


def update_operator(store: Store, change: Callable[[dict[str, Any]], None], attempts: int = 10) -> OperatorState:
    """Read-modify-write the document with compare-and-swap: ``change`` edits its JSON form in place; a
    concurrent write by another operator is re-read and the change applied again. Returns the state written."""
    for _ in range(attempts):
        try:
            docs = store.documents(OPERATOR_DOCUMENT)
        except (AssertionError, NotImplementedError, KeyError, ValueError) as exc:
            raise OmhaError(
                f"store {type(store).__name__} does not keep the operator document ({exc or 'refused'}); "
                "move, standby and cleanup need a store that does"
            ) from None
        current = read_operator(store) if docs else OperatorState()
        if current.problem:
            raise OmhaError(f"the operator document is unreadable ({current.problem}); fix or remove it first")
        doc = current.as_dict()
        change(doc)
        text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        try:
            version = store.put_document(OPERATOR_DOCUMENT, text, docs[0].version if docs else "")
        except ConflictError:
            time.sleep(0.05)
            continue
        return parse_operator(text, version)
    raise OmhaError("the operator document kept changing under us; nothing was changed; try again")


def new_request_id() -> str:
    """A unique id for a clean-up request: 48 random bits (as the first 12 hex digits of a uuid4; the uuid module
    is not imported for it, it costs ``omha status`` a few ms at start-up)."""
    return os.urandom(6).hex()


class OperatorFollower:
    """A daemon's side: read the standing orders each cycle and notice new clean-up requests for this node."""

    def __init__(self, node: str, log: logging.Logger) -> None:
        self.node = node
        self.log = log
        self.state = OperatorState()
        self._seen: dict[tuple[str, str], str] | None = None
        self._complained: str | None = None

    def read(self, store: Store) -> OperatorState:
        """Read the orders (in a worker thread). An unreadable document keeps the last good orders."""
        try:
            state = read_operator(store)
        except StoreError as exc:
            self._complain(str(exc))
            return self.state
        if state.problem:
            self._complain(f"operator document refused, the last good one stays in force: {state.problem}")
            return self.state
        self._complained = None
        if (state.prefer, state.standby) != (self.state.prefer, self.state.standby):
            moves = ", ".join(f"{g} -> {n}" for g, n in sorted(state.prefer.items())) or "none"
            self.log.info("operator orders: standby %s; moved %s", ", ".join(sorted(state.standby)) or "none", moves)
        if state.version != self.state.version and state.version is not None:
            try:  # stores that replicate copies (openMosix MFS) keep one on this node
                docs = store.documents(OPERATOR_DOCUMENT)
                if docs:
                    store.adopt(OPERATOR_DOCUMENT, docs[0])
            except (StoreError, OSError):
                pass
        self.state = state
        return state

    def _complain(self, message: str) -> None:
        if self._complained != message:
            self.log.warning("%s", message)
        self._complained = message

    def cleanups_due(self) -> list[str]:
        """Groups with a clean-up request for this node (or every node) not handled yet. Requests already in the
        document when this daemon started are taken as handled: a new daemon has no failures to forget."""
        current = {
            (group, who): rid
            for group, nodes in self.state.cleanup.items()
            for who, rid in nodes.items()
            if who in (self.node, ALL_NODES)
        }
        if self._seen is None:
            self._seen = current
            return []
        due = sorted({g for key, rid in current.items() if self._seen.get(key) != rid for g in [key[0]]})
        self._seen = current
        return due


def clean_up(group: str, failed: dict[str, Any], init: Any, log: logging.Logger) -> None:
    """Carry out ``omha cleanup`` for ``group`` on this node: forget its failed tests (``failed``, the daemon's
    memory of them, published to the others) and, when its stop FAILED here (the claim is kept, nothing starts),
    try the stop again; a stop that succeeds now releases the claim and the group is tried again."""
    forgot = failed.pop(group, None)
    retry = init is not None and init.state(group) == "FAILED" and init.level(group) in (None, "stop")
    if retry:
        init.tell(group, "stop")
    if forgot is not None or retry:
        log.info("%s: cleaned up (omha cleanup)%s", group, ": retrying the failed stop" if retry else "")
