"""The ``etcd`` membership: a node is a member while it holds a live etcd lease and its member key.

- ``open()`` grants a lease of TTL ``[timing] dead_after`` (whole seconds, at least 2) and creates
  ``P/members/<node>`` under it, only if absent: a second daemon with the same node name is refused, except that
  the key of a dead earlier daemon on this same host (its pid is gone) is taken over at once.
- ``heartbeat()`` refreshes the lease. This node counts itself a member until ``send time of the last
  successful keepalive + TTL``, which is never later than etcd's own expiry, so a node cut off from etcd knows it
  is out no later than the others see its member key vanish.
- When etcd answers that the lease is gone, the node is out: ``is_member()`` is False, its status is no longer
  published (it was under the lease, so etcd deleted it), and it joins again with a new lease one TTL later, so
  that the daemon has stopped its groups and every other node saw it leave. If only the local deadline passed
  (etcd unreachable) and etcd later answers that the lease still lives, nobody saw the node leave and it is a
  member again at once.
- ``up_nodes()`` is the set of nodes with a live member key.
- ``close()`` revokes the lease: the member key and status vanish at once instead of after a TTL.

An unreachable etcd never raises out of ``heartbeat()``: it is logged once per change and makes ``is_member()``
go False after the TTL.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from omha_core.backends import Membership, Store
from omha_core.errors import StoreError
from omha_membership_etcd.client import EtcdClient, KeyValue, b64, compare_absent, range_result
from omha_membership_etcd.keys import Keys, range_end
from omha_membership_etcd.options import options_from_config
from omha_membership_etcd.store import EtcdStore

if TYPE_CHECKING:
    from omha_core.config import Config

log = logging.getLogger(__name__)

#: how often ``open()`` looks again while an earlier holder of this node's member key may still expire
JOIN_POLL = 0.2


def _pid_gone(pid: Any) -> bool:
    """True when no process ``pid`` exists on this host."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class EtcdMembership(Membership):
    """Membership by an etcd lease kept alive every heartbeat."""

    #: a member key lives only while its own daemon keeps the lease alive: proof of life (see Membership)
    authoritative = True

    def __init__(self, config: Config, store: Store) -> None:
        super().__init__(config, store)
        self._etcd = store if isinstance(store, EtcdStore) else None
        if self._etcd is not None:
            self.options, self.client, self.keys = self._etcd.options, self._etcd.client, self._etcd.keys
        else:
            self.options = options_from_config(config)
            self.client = EtcdClient(self.options)
            self.keys = Keys(self.options.prefix)
        self.node = config.node
        self.ttl = self.options.ttl
        self.lease: int | None = None
        self._deadline = 0.0  # monotonic time until which this node counts itself a member
        self._rejoin_at = 0.0
        self._trouble: str | None = None  # the problem last logged, so each is logged once
        self._lock = threading.Lock()

    # -- joining and leaving ----------------------------------------------------------------------------
    def open(self) -> None:
        """Join: grant a lease and create this node's member key under it. Raises StoreError if impossible."""
        with self._lock:
            self._join(wait=self.ttl + 1.0)

    def _join(self, wait: float) -> None:
        """Create this node's member key under a new lease; wait up to ``wait`` s for an earlier holder's lease."""
        key = self.keys.member(self.node)
        give_up = time.monotonic() + wait
        while True:
            held = self._held(key)
            if held is not None:
                if self._stale_here(held):
                    log.info("%s: taking over the member key of a dead daemon of this host", self.node)
                    self.client.lease_revoke(held.lease)
                    continue
                if time.monotonic() >= give_up:
                    raise StoreError(self._duplicate(key, held))
                time.sleep(JOIN_POLL)
                continue
            sent = time.monotonic()
            lease, ttl = self.client.lease_grant(self.ttl)
            if not lease or ttl <= 0:
                raise StoreError(f"etcd {self.client.current_endpoint}: granted no lease for {self.node}")
            me = {"node": self.node, "lease": f"{lease:x}", "host": socket.gethostname(), "pid": os.getpid()}
            put = {"request_put": {"key": b64(key), "value": b64(json.dumps(me).encode()), "lease": str(lease)}}
            try:
                ok, responses, revision = self.client.txn(
                    [compare_absent(key)], [put], [{"request_range": {"key": b64(key)}}], f"join as {key}"
                )
            except BaseException:
                self._revoke_quietly(lease)
                raise
            mine = range_result(responses)
            if ok or (mine and mine[0].lease == lease):  # the latter: our own write, answered twice after a failover
                break
            self._revoke_quietly(lease)  # another daemon got there first: look again
        self.lease = lease
        self.ttl = ttl
        self._deadline = sent + ttl
        if self._etcd is not None:
            self._etcd._wrote(revision)
            self._etcd.bind_lease(self.node, lease)

    def _held(self, key: str) -> KeyValue | None:
        kvs, _revision = self.client.range(key, what=f"read {key}")
        return kvs[0] if kvs else None

    def _revoke_quietly(self, lease: int) -> None:
        try:
            self.client.lease_revoke(lease)
        except StoreError:
            pass  # it expires by itself

    @staticmethod
    def _stale_here(held: KeyValue) -> bool:
        """The member key was left by a daemon of this host that no longer runs."""
        try:
            doc = json.loads(held.value)
        except ValueError:
            return False
        return isinstance(doc, dict) and doc.get("host") == socket.gethostname() and _pid_gone(doc.get("pid"))

    def _duplicate(self, key: str, held: KeyValue | None) -> str:
        where = ""
        if held is not None:
            try:
                doc = json.loads(held.value)
                where = f" (held by pid {doc.get('pid')} on host {doc.get('host')})"
            except (ValueError, AttributeError):
                pass
        return (
            f"etcd {key}: node {self.node!r} is already a member{where}: another omha daemon runs with this node "
            "name; give every node its own 'node' in omha.toml"
        )

    def close(self) -> None:
        """Leave: revoke the lease, which deletes the member key at once, and the status unless it says the daemon
        stopped cleanly (:meth:`EtcdStore.keep_final_status` keeps that one, so that the others read it)."""
        with self._lock:
            lease, self.lease = self.lease, None
            if lease:
                if self._etcd is not None:
                    try:
                        self._etcd.keep_final_status(self.node)
                    except StoreError as exc:
                        log.warning("%s: could not keep its final status: %s", self.node, exc)
                try:
                    self.client.lease_revoke(lease)
                except StoreError as exc:
                    log.warning("%s: could not revoke etcd lease %x (it expires by itself): %s", self.node, lease, exc)
            if self._etcd is None:
                self.client.close()

    # -- every cycle --------------------------------------------------------------------------------------
    def _note(self, problem: str, level: int = logging.WARNING) -> None:
        if problem != self._trouble:
            log.log(level, "%s: %s", self.node, problem)
            self._trouble = problem

    def _lose(self, reason: str) -> None:
        self.lease = None
        self._deadline = 0.0
        self._rejoin_at = time.monotonic() + self.ttl
        if self._etcd is not None:
            self._etcd.bind_lease(self.node, None)
        self._note(f"lost etcd membership ({reason}); joining again in {self.ttl}s")

    def heartbeat(self) -> None:
        """Keep the lease alive; after a loss, join again once the hold-down passed. Never raises StoreError."""
        with self._lock:
            now = time.monotonic()
            if self.lease is None:
                if now < self._rejoin_at:
                    return
                try:
                    self._join(wait=0.0)
                except StoreError as exc:
                    self._note(f"cannot join the cluster: {exc}")
                    return
                self._note(f"joined the cluster again (etcd lease {self.lease:x})", logging.INFO)
                return
            if now >= self._deadline:
                self._note(f"no keepalive answer from etcd within the lease TTL ({self.ttl}s): not a member now")
            timeout = self.options.timeout
            if self._deadline > now:
                timeout = max(0.05, min(timeout, self._deadline - now))
            try:
                ttl = self.client.lease_keepalive(self.lease, timeout)
            except StoreError as exc:
                self._note(f"etcd lease keepalive failed: {exc}")
                return
            if ttl <= 0:
                self._lose(f"etcd lease {self.lease:x} expired")
                return
            self._deadline = now + ttl
            if self._trouble is not None:
                self._note(f"etcd lease {self.lease:x} kept alive again", logging.INFO)
                self._trouble = None

    def is_member(self) -> bool:
        """True while this node holds its lease by its own monotonic clock (no I/O)."""
        return self.lease is not None and time.monotonic() < self._deadline

    def up_nodes(self) -> set[str] | None:
        """Nodes whose member key lives. Raises StoreError when etcd cannot be read."""
        base = self.keys.members
        kvs, _revision = self.client.range(base, range_end(base), f"read the members under {base}")
        return {kv.key[len(base) :] for kv in kvs}
