"""The ``etcd`` status store: node statuses, cltab/hactl, claims and fencing records under one key prefix.

See :mod:`omha_membership_etcd.keys` for the layout. What each operation relies on:

- ``cltab``/``hactl`` are versioned by the key's ``mod_revision``; a write with an expected version is a
  transaction "put if mod_revision is still V", so two operators can never silently overwrite each other.
- A claim is a transaction "create if absent" (``create_revision == 0``): exactly one node wins, whatever the
  number of concurrent claimers. Claims are *not* bound to the claimer's lease: a node that is lost keeps its
  claims until the daemon breaks them after fencing it (or after ``[fencing] unfenced_grace`` where no device
  is configured). Were they leased, a node cut off from etcd but still running its groups would lose its claims
  when its lease expired, and another node would start the same groups before anyone fenced it.
- A status is put under its node's lease once that node's etcd membership joined (:meth:`EtcdStore.bind_lease`),
  so it disappears with the lease when the node dies or is cut off; the final status of a clean stop is re-put
  without the lease before the leave (:meth:`EtcdStore.keep_final_status`), so the others read that it stopped.
- :meth:`EtcdStore.wait_for_change` watches the prefix from the oldest revision read since the last wait, so a
  change between reading and waiting is not missed; it ignores this store's own writes and status updates that
  only move the heartbeat fields (``seq``, ``time``, ``view``), and falls back to sleeping when the watch fails.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omha_core.backends import STORED_DOCUMENTS, Store, Versioned
from omha_core.errors import ConflictError, StoreError
from omha_core.status_json import StatusEncoder
from omha_membership_etcd.client import (
    NOT_FOUND,
    EtcdClient,
    EtcdError,
    KeyValue,
    as_int,
    b64,
    compare_absent,
    compare_unchanged,
    range_result,
    unb64,
)
from omha_membership_etcd.keys import Keys, range_end
from omha_membership_etcd.options import EtcdOptions, options_from_config

if TYPE_CHECKING:
    from omha_core.config import Config

log = logging.getLogger(__name__)

#: status fields that change on every heartbeat; a status update that changes nothing else wakes nobody
HEARTBEAT_FIELDS = frozenset({"seq", "time", "view"})
#: attempts at dropping a claim whose key keeps changing under us
DROP_ATTEMPTS = 5


def _json(value: bytes) -> Any:
    return json.loads(value.decode("utf-8"))


def _same_but_heartbeat(before: bytes, after: bytes) -> bool:
    """True when two status documents differ at most in their heartbeat fields."""
    try:
        old, new = _json(before), _json(after)
    except ValueError:
        return False
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    return {k: v for k, v in old.items() if k not in HEARTBEAT_FIELDS} == {
        k: v for k, v in new.items() if k not in HEARTBEAT_FIELDS
    }


class EtcdStore(Store):
    """A status store on etcd v3 (through its JSON gateway)."""

    def __init__(self, config: Config, options: EtcdOptions | None = None) -> None:
        super().__init__(config)
        self.options = options or options_from_config(config)
        self.keys = Keys(self.options.prefix)
        self.client = EtcdClient(self.options)
        self._leases: dict[str, int] = {}
        #: each node's last status published through this store, kept for :meth:`keep_final_status`
        self._published: dict[str, bytes] = {}
        self._encoders: dict[str, StatusEncoder] = {}
        self._out: set[str] = set()
        self._lock = threading.Lock()
        self._own: set[int] = set()  # revisions made by this store's writes: not a change for wait_for_change
        self._floor: int | None = None  # oldest revision read since the last wait
        self._last = 0  # newest revision seen
        self._watch_failing = False

    # -- bookkeeping for wait_for_change --------------------------------------------------------------------
    def _read(self, revision: int) -> None:
        with self._lock:
            if revision and (self._floor is None or revision < self._floor):
                self._floor = revision
            self._last = max(self._last, revision)

    def _wrote(self, revision: int) -> None:
        with self._lock:
            if revision:
                self._own.add(revision)
            self._last = max(self._last, revision)

    # -- life cycle -----------------------------------------------------------------------------------------
    def open(self) -> None:
        """Check that etcd answers and that this user may read the prefix."""
        doc = self.client.call(
            "kv/range",
            {"key": b64(self.keys.all), "range_end": b64(range_end(self.keys.all)), "count_only": True},
            f"read {self.keys.all}",
        )
        with self._lock:  # not a read of data: the first wait starts from here, without a floor
            self._last = max(self._last, as_int((doc.get("header") or {}).get("revision")))

    def close(self) -> None:
        self.client.close()

    def bind_lease(self, node: str, lease: int | None) -> None:
        """Put ``node``'s status under ``lease`` from now on; None: the node lost its lease, refuse to publish."""
        with self._lock:
            if lease:
                self._leases[node] = lease
                self._out.discard(node)
            else:
                self._leases.pop(node, None)
                self._out.add(node)

    # -- node status ----------------------------------------------------------------------------------------
    def publish(self, node: str, status: Mapping[str, Any]) -> None:
        if node in self._out:
            raise StoreError(f"{node} lost its etcd lease: its status is published again once it rejoins the cluster")
        lease = self._leases.get(node, 0)
        encoder = self._encoders.get(node)
        if encoder is None:  # compact JSON, unchanged groups' text reused (issue 19: an idle daemon's CPU)
            encoder = self._encoders[node] = StatusEncoder()
        value = encoder.encode(status).encode()
        try:
            revision = self.client.put(self.keys.status(node), value, lease, f"publish {node}'s status")
        except EtcdError as exc:
            if exc.code == NOT_FOUND and lease:
                raise StoreError(
                    f"{node}'s etcd lease {lease:x} has expired: not a member until it joins the cluster again"
                ) from None
            raise
        self._published[node] = value
        self._wrote(revision)

    def keep_final_status(self, node: str) -> None:
        """Re-put ``node``'s last status without its lease when it says the daemon stopped cleanly.

        Called before a clean leave revokes the lease. Without it, the lease took the final status with it, and
        an observer was left with the status it had read while a group was still STOPPING: "lost while holding
        the group", and the node that had just stopped cleanly was fenced (chaos campaign, seed 3332). A status
        that does not say ``stopped`` is left under the lease, to go with it as before."""
        value = self._published.get(node)
        if value is None or not _json(value).get("stopped"):
            return
        self._wrote(self.client.put(self.keys.status(node), value, 0, f"keep {node}'s final status"))

    def statuses(self) -> dict[str, Mapping[str, Any] | Exception]:
        base = self.keys.statuses
        kvs, revision = self.client.range(base, range_end(base), f"read the statuses under {base}")
        self._read(revision)
        out: dict[str, Mapping[str, Any] | Exception] = {}
        for kv in kvs:
            node = kv.key[len(base) :]
            try:
                doc = _json(kv.value)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                out[node] = doc
            except ValueError as exc:
                out[node] = StoreError(f"etcd {kv.key}: unreadable status: {exc}")
        return out

    def forget(self, node: str) -> None:
        doc = self.client.call("kv/deleterange", {"key": b64(self.keys.status(node))}, f"delete {node}'s status")
        if as_int(doc.get("deleted")):
            self._wrote(as_int((doc.get("header") or {}).get("revision")))

    # -- cluster documents ----------------------------------------------------------------------------------
    def documents(self, name: str) -> list[Versioned]:
        assert name in STORED_DOCUMENTS
        key = self.keys.document(name)
        kvs, revision = self.client.range(key, what=f"read {name} ({key})")
        self._read(revision)
        return [
            Versioned(
                text=kv.value.decode("utf-8", "surrogateescape"),
                version=str(kv.mod_revision),
                order=kv.mod_revision,
                origin=f"etcd {key}",
            )
            for kv in kvs
        ]

    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        """Write ``name``; with ``expect_version`` (a mod_revision; ``"0"`` or ``""``: must not exist yet) only
        if the document is still at that version, else :class:`ConflictError`."""
        assert name in STORED_DOCUMENTS
        key = self.keys.document(name)
        value = text.encode("utf-8", "surrogateescape")
        put = {"request_put": {"key": b64(key), "value": b64(value)}}
        if expect_version is None:
            revision = self.client.put(key, value, what=f"write {name} ({key})")
            self._wrote(revision)
            return str(revision)
        try:
            expected = int(expect_version or "0")
        except ValueError:
            expected = -1  # not a version this store made: can only conflict
        ok, responses, revision = self.client.txn(
            [compare_unchanged(key, expected)], [put], [{"request_range": {"key": b64(key)}}], f"write {name} ({key})"
        )
        if ok:
            self._wrote(revision)
            return str(revision)
        current = range_result(responses)
        if current and current[0].value == value:
            return str(current[0].mod_revision)  # it holds exactly this text already (our own retried write)
        now = f"version {current[0].mod_revision}" if current else "deleted"
        raise ConflictError(
            f"etcd {key}: {name} changed since it was read (expected version {expect_version or 'none'}, now {now}): "
            "someone else wrote it; read it again and retry"
        )

    # -- claims ---------------------------------------------------------------------------------------------
    def _create(self, key: str, doc: Mapping[str, Any], what: str) -> tuple[bool, KeyValue | None]:
        """Create ``key`` if absent: ``(created, the key now there when not created)``."""
        put = {"request_put": {"key": b64(key), "value": b64(json.dumps(dict(doc)).encode())}}
        read = {"request_range": {"key": b64(key)}}
        ok, responses, revision = self.client.txn([compare_absent(key)], [put], [read], what)
        if ok:
            self._wrote(revision)
            return True, None
        current = range_result(responses)
        return False, current[0] if current else None

    @staticmethod
    def _decode(kv: KeyValue | None) -> Mapping[str, Any] | None:
        if kv is None:
            return None
        try:
            doc = _json(kv.value)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    def claim(self, group: str, node: str, incarnation: str) -> bool:
        key = self.keys.claim(group)
        doc = {"node": node, "incarnation": incarnation, "time": time.time()}
        created, held = self._create(key, doc, f"claim {group} for {node}")
        if created:
            return True
        current = self._decode(held)
        return bool(current and current.get("node") == node)

    def claims(self) -> dict[str, Mapping[str, Any]]:
        base = self.keys.claims
        kvs, revision = self.client.range(base, range_end(base), f"read the claims under {base}")
        self._read(revision)
        return {kv.key[len(base) :]: self._decode(kv) or {"node": "?", "incarnation": "?"} for kv in kvs}

    def _drop_claim(self, group: str, holder: str) -> None:
        """Delete ``group``'s claim if ``holder`` holds it, atomically: a newer claim by another node survives."""
        key = self.keys.claim(group)
        for _ in range(DROP_ATTEMPTS):
            kvs, _rev = self.client.range(key, what=f"read the claim on {group}")
            if not kvs:
                return
            current = self._decode(kvs[0])
            if current is None or current.get("node") != holder:
                return
            ok, _responses, revision = self.client.txn(
                [compare_unchanged(key, kvs[0].mod_revision)],
                [{"request_delete_range": {"key": b64(key)}}],
                what=f"drop {holder}'s claim on {group}",
            )
            if ok:
                self._wrote(revision)
                return
        raise StoreError(f"etcd {key}: the claim kept changing while dropping {holder}'s claim; try again")

    def release_claim(self, group: str, node: str) -> None:
        self._drop_claim(group, node)

    def break_claim(self, group: str, holder: str) -> None:
        self._drop_claim(group, holder)

    # -- fencing --------------------------------------------------------------------------------------------
    def fence_lock(self, node: str, incarnation: str, fencer: str) -> bool:
        key = self.keys.fence_lock(node, incarnation)
        created, held = self._create(key, {"fencer": fencer, "time": time.time()}, f"lock fencing of {node}")
        if created:
            return True
        current = self._decode(held)
        return bool(current and current.get("fencer") == fencer)

    def fence_lock_holder(self, node: str, key: str) -> str | None:
        """The fencer named in the fence lock ``(node, key)``, None when there is no such lock.

        The daemon asks this when it loses the race for a lock: it waits for a live holder and takes over
        fencing only from a lost one. Without an answer every survivor would take a lock of its own and fence.
        """
        lock = self.keys.fence_lock(node, key)
        kvs, revision = self.client.range(lock, what=f"read the fence lock {lock}")
        self._read(revision)
        doc = self._decode(kvs[0]) if kvs else None
        fencer = doc.get("fencer") if doc else None
        return fencer if isinstance(fencer, str) else None

    def put_fence_record(self, node: str, record: Mapping[str, Any]) -> None:
        key = self.keys.fence_record(node)
        revision = self.client.put(key, json.dumps(dict(record)).encode(), what=f"record fencing of {node}")
        self._wrote(revision)

    def fence_records(self) -> dict[str, Mapping[str, Any]]:
        base = self.keys.fence_records
        kvs, revision = self.client.range(base, range_end(base), f"read the fence records under {base}")
        self._read(revision)
        out: dict[str, Mapping[str, Any]] = {}
        for kv in kvs:
            doc = self._decode(kv)
            if doc is not None:
                out[kv.key[len(base) :]] = doc
        return out

    # -- events ---------------------------------------------------------------------------------------------
    def _relevant(self, event: Mapping[str, Any]) -> bool:
        """Whether a watch event is a change the daemon should react to."""
        kv = event.get("kv")
        if not isinstance(kv, Mapping):
            return True
        if as_int(kv.get("mod_revision")) in self._own:
            return False
        key = unb64(kv.get("key")).decode(errors="replace")
        prev = event.get("prev_kv")
        if event.get("type", "PUT") == "PUT" and key.startswith(self.keys.statuses) and isinstance(prev, Mapping):
            return not _same_but_heartbeat(unb64(prev.get("value")), unb64(kv.get("value")))
        return True

    def wait_for_change(self, timeout: float) -> None:
        """Block until another node changed something under the prefix, or ``timeout`` seconds passed."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            seen = self._floor if self._floor is not None else self._last
            start = seen + 1 if seen else 0
            self._floor = None
            self._own = {r for r in self._own if r >= start}
        try:
            self._watch(start, deadline)
        except StoreError as exc:
            if not self._watch_failing:
                log.warning("etcd watch failed, sleeping between cycles until it works again: %s", exc)
                self._watch_failing = True
            remaining = deadline - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
            return
        if self._watch_failing:
            log.info("etcd watch works again")
            self._watch_failing = False

    def _watch(self, start: int, deadline: float) -> None:
        if deadline <= time.monotonic():
            return
        stream = self.client.watch(self.keys.all, range_end(self.keys.all), start, deadline)
        try:
            while True:
                result = stream.next(deadline)
                if result is None:
                    return
                if result.get("canceled") or as_int(result.get("compact_revision")):
                    return  # history compacted or watch cancelled: cannot tell what changed, so say it did
                events = [e for e in result.get("events") or () if isinstance(e, Mapping)]
                with self._lock:
                    for event in events:
                        kv = event.get("kv")
                        if isinstance(kv, Mapping):
                            self._last = max(self._last, as_int(kv.get("mod_revision")))
                if any(self._relevant(e) for e in events):
                    return
        finally:
            stream.close()
