"""The etcd membership against a real etcd: joining, leases, expiry, rejoining, outages."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from etcd_support import Opened, make_config
from omha_membership_etcd.client import b64
from omha_membership_etcd.membership import EtcdMembership
from omha_testing.etcd import EtcdCluster, etcd_cluster, gateway

from omha_core.errors import StoreError
from omha_core.plugins import OmhaPluginManager

POLL = 0.1


def eventually(check: Callable[[], bool], timeout: float = 15.0, step: Callable[[], object] | None = None) -> bool:
    """Poll ``check`` (after calling ``step``) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if step is not None:
            step()
        if check():
            return True
        time.sleep(POLL)
    return False


@contextmanager
def heartbeating(membership: EtcdMembership, every: float = 0.3) -> Iterator[None]:
    """Keep ``membership`` heartbeating in a thread, as its daemon would, while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            membership.heartbeat()

    thread = threading.Thread(target=beat)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def lease_of(etcd: EtcdCluster, key: str) -> int:
    doc = gateway(etcd.endpoints[0], "kv/range", {"key": b64(key)})
    return int(doc["kvs"][0].get("lease", 0)) if doc.get("kvs") else 0


def test_members_join_with_a_lease_and_see_each_other(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    store1, m1 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    _, m2 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n2"))
    assert m1.is_member() and m2.is_member()
    assert m1.up_nodes() == {"n1", "n2"}
    assert m1.ttl == 2  # dead_after 2.0
    m1.heartbeat()
    assert m1.is_member()
    store1.publish("n1", {"node": "n1", "incarnation": "i", "seq": 1})
    assert m1.lease is not None
    assert lease_of(etcd_server, store1.keys.member("n1")) == m1.lease
    assert lease_of(etcd_server, store1.keys.status("n1")) == m1.lease


def test_ttl_follows_dead_after(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    _, m = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, dead_after=3.2))
    assert m.ttl == 4
    doc = gateway(etcd_server.endpoints[0], "lease/timetolive", {"ID": str(m.lease)})
    assert int(doc["grantedTTL"]) == 4


def test_close_leaves_at_once(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    store1, m1 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    _, m2 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n2"))
    store1.publish("n1", {"node": "n1", "incarnation": "i", "seq": 1})
    m1.close()
    assert not m1.is_member()
    assert m2.up_nodes() == {"n2"}
    assert "n1" not in store1.statuses()


def test_a_second_daemon_with_the_same_name_is_refused(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    config = make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1")
    _, first = opened.member(config)
    with heartbeating(first), pytest.raises(StoreError) as info:
        opened.member(config)
    message = str(info.value)
    assert "'n1' is already a member" in message and f"pid {os.getpid()}" in message
    assert first.up_nodes() == {"n1"}
    first.heartbeat()
    assert first.is_member()


def test_the_member_key_of_a_dead_daemon_on_this_host_is_taken_over(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    """A daemon restarted right after a crash does not wait for its old lease to expire."""
    config = make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1", dead_after=30)
    dead = subprocess.Popen(["true"])
    dead.wait()
    url = etcd_server.endpoints[0]
    old = gateway(url, "lease/grant", {"TTL": "30"})["ID"]
    store = opened.store(config)
    leftover = {"node": "n1", "lease": "x", "host": socket.gethostname(), "pid": dead.pid}
    gateway(url, "kv/put", {"key": b64(store.keys.member("n1")), "value": b64(json.dumps(leftover)), "lease": old})
    gateway(url, "kv/put", {"key": b64(store.keys.status("n1")), "value": b64("{}"), "lease": old})
    _, m = opened.member(config, store)
    assert m.is_member() and m.lease != int(old)
    assert lease_of(etcd_server, store.keys.member("n1")) == m.lease
    assert "n1" not in store.statuses()  # the dead daemon's status went with its lease


def test_lease_expiry_removes_the_member_and_its_status_but_not_its_claims(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    store1, m1 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    store2, m2 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n2"))
    store1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 1})
    assert store1.claim("web", "n1", "i1")
    store2.statuses()
    # n1 stops heartbeating (hung, or cut off); n2 keeps going
    with heartbeating(m2):
        assert eventually(lambda: m2.up_nodes() == {"n2"}), "n1's member key outlived its lease"
        assert "n1" not in store2.statuses()
        assert store2.claims()["web"]["node"] == "n1"  # kept until n1 is fenced and the claim broken
        assert not m1.is_member()
        m1.heartbeat()  # etcd: the lease is gone
        assert not m1.is_member() and m1.lease is None
        with pytest.raises(StoreError, match="lost its etcd lease"):
            store1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 2})
        # after a hold-down of one TTL it joins again with a new lease
        assert eventually(m1.is_member, step=m1.heartbeat)
        store1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 3})
        assert m2.up_nodes() == {"n1", "n2"}
        assert store2.statuses()["n1"]["seq"] == 3


def test_a_lease_expiry_wakes_the_other_nodes(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    store2, m2 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n2"))
    store2.statuses()
    with heartbeating(m2):
        started = time.monotonic()
        woke = False
        while time.monotonic() - started < 15 and not woke:
            store2.wait_for_change(20.0)
            woke = "n1" not in (m2.up_nodes() or set())
        assert woke


def test_an_unreachable_etcd_ends_membership_without_crashing(
    plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened, caplog: pytest.LogCaptureFixture
) -> None:
    with etcd_cluster(1) as etcd:
        store, m = opened.member(make_config(plugin_manager, etcd.endpoints, cluster_name, node="n1", dead_after=3))
        store.claims()
        member = etcd.members[0]
        member.kill()
        with caplog.at_level(logging.WARNING, logger="omha_membership_etcd"):
            assert eventually(lambda: not m.is_member(), step=m.heartbeat), "still a member without etcd"
        assert any(
            "keepalive failed" in r.getMessage() and "etcd unreachable" in r.getMessage() for r in caplog.records
        )
        with pytest.raises(StoreError, match="etcd unreachable"):
            m.up_nodes()
        store.wait_for_change(0.2)  # sleeps instead of raising
        # etcd comes back with its data: the lease was extended on restart, so nobody saw n1 leave
        etcd.restart(member)
        assert eventually(m.is_member, step=m.heartbeat)
        assert m.up_nodes() == {"n1"}
