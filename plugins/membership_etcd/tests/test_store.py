"""The etcd store against a real etcd: statuses, versioned documents, claims, fencing records, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from etcd_support import Opened, make_config
from omha_membership_etcd.store import EtcdStore
from omha_testing.etcd import EtcdCluster, b64, free_ports, gateway

from omha_core.config import validate_config
from omha_core.errors import ConflictError, StoreError
from omha_core.plugins import OmhaPluginManager


@pytest.fixture
def pair(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> tuple[EtcdStore, EtcdStore]:
    """Two nodes' stores on the same cluster prefix."""
    a = opened.store(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    b = opened.store(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n2"))
    return a, b


def test_new_cluster_is_empty(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, _ = pair
    assert a.statuses() == {}
    assert a.claims() == {}
    assert a.documents("cltab") == [] and a.documents("hactl") == []
    assert a.fence_records() == {}


def test_statuses_round_trip_and_garbage_is_an_error_value(
    pair: tuple[EtcdStore, EtcdStore], etcd_server: EtcdCluster
) -> None:
    a, b = pair
    a.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 1, "groups": {"web": {"state": "DONE"}}})
    b.publish("n2", {"node": "n2", "incarnation": "i2", "seq": 7})
    gateway(etcd_server.endpoints[0], "kv/put", {"key": b64(a.keys.status("n3")), "value": b64("{not json")})
    seen = b.statuses()
    assert seen["n1"] == {"node": "n1", "incarnation": "i1", "seq": 1, "groups": {"web": {"state": "DONE"}}}
    assert seen["n2"]["seq"] == 7
    assert isinstance(seen["n3"], StoreError) and "n3" in str(seen["n3"])
    a.forget("n3")
    assert set(a.statuses()) == {"n1", "n2"}


def test_documents_are_versioned_by_revision(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    v1 = a.put_document("hactl", "web 3\n", None)
    [doc] = b.documents("hactl")
    assert (doc.text, doc.version) == ("web 3\n", v1)
    assert "hactl" in doc.origin
    v2 = b.put_document("hactl", "web 3\ndb 4\n", v1)
    assert int(v2) > int(v1)
    assert a.documents("hactl")[0].text == "web 3\ndb 4\n"
    odd = "web:ip:1:once:echo caf\u00e9 \udcff\n"  # not valid UTF-8 on disk: kept byte for byte
    a.put_document("cltab", odd, None)
    assert b.documents("cltab")[0].text == odd


def test_two_writers_one_is_refused_with_a_clear_conflict(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    base = a.put_document("hactl", "web 3\n", None)
    seen_by_a = a.documents("hactl")[0].version
    seen_by_b = b.documents("hactl")[0].version
    assert seen_by_a == seen_by_b == base
    b.put_document("hactl", "web stop\n", seen_by_b)
    with pytest.raises(ConflictError) as info:
        a.put_document("hactl", "web 4\n", seen_by_a)
    message = str(info.value)
    assert "changed since it was read" in message and "retry" in message and a.keys.document("hactl") in message
    assert a.documents("hactl")[0].text == "web stop\n"  # b's change was not lost
    fresh = a.documents("hactl")[0].version
    a.put_document("hactl", "web 4\n", fresh)
    assert b.documents("hactl")[0].text == "web 4\n"


def test_expect_absent_creates_only_once(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    a.put_document("cltab", "first\n", "0")
    with pytest.raises(ConflictError):
        b.put_document("cltab", "second\n", "0")
    with pytest.raises(ConflictError):
        b.put_document("cltab", "second\n", "not-a-revision")
    with pytest.raises(ConflictError):
        b.put_document("cltab", "second\n", "")  # the core's spelling of "must not exist yet" (omha tell, load)
    assert b.documents("cltab")[0].text == "first\n"
    b.put_document("hactl", "web run\n", "")
    assert a.documents("hactl")[0].text == "web run\n"


def test_a_write_that_already_landed_is_no_conflict(pair: tuple[EtcdStore, EtcdStore]) -> None:
    """A CAS write retried after a failover finds its own text: success, not a conflict."""
    a, _ = pair
    v1 = a.put_document("hactl", "web 3\n", None)
    v2 = a.put_document("hactl", "web 4\n", v1)
    assert a.put_document("hactl", "web 4\n", v1) == v2


def test_claims_from_two_nodes_exactly_one_wins(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    assert a.claim("web", "n1", "inc-a") is True
    assert b.claim("web", "n2", "inc-b") is False
    assert a.claim("web", "n1", "inc-a") is True  # already held: still True
    assert b.claims()["web"]["node"] == "n1" and b.claims()["web"]["incarnation"] == "inc-a"
    b.release_claim("web", "n2")  # not b's: nothing happens
    b.break_claim("web", "n3")
    assert a.claims()["web"]["node"] == "n1"
    b.break_claim("web", "n1")  # after fencing n1
    assert "web" not in a.claims()
    assert b.claim("web", "n2", "inc-b") is True
    b.release_claim("web", "n2")
    assert b.claims() == {}


CLAIMER = """
import json, os, sys, time
from omha_core.config import validate_config
from omha_membership_etcd.store import EtcdStore
raw, node, go, groups = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(",")
raw["node"] = node
store = EtcdStore(validate_config(raw))
store.open()
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
print(json.dumps({g: store.claim(g, node, "inc-" + node) for g in groups}), flush=True)
"""


def test_concurrent_claims_from_several_processes(etcd_server: EtcdCluster, cluster_name: str, tmp_path: Path) -> None:
    raw = {
        "cluster": {"name": cluster_name, "store": "etcd", "membership": "etcd"},
        "etcd": {"endpoints": etcd_server.endpoints},
    }
    go = tmp_path / "go"
    groups = ["web", "db", "mail"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, json.dumps(raw), f"p{i}", str(go), ",".join(groups)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(5)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        results = {f"p{i}": json.loads(p.communicate(timeout=30)[0]) for i, p in enumerate(procs)}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    holders = EtcdStore(validate_config(raw))
    try:
        claims = holders.claims()
    finally:
        holders.close()
    for group in groups:
        winners = [node for node, got in results.items() if got[group]]
        assert len(winners) == 1, f"{group}: winners {winners}"
        assert claims[group]["node"] == winners[0]


def test_fence_lock_has_one_holder_and_records_are_kept(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    assert a.fence_lock("n3", "inc-1", "n1") is True
    assert b.fence_lock("n3", "inc-1", "n2") is False
    assert a.fence_lock("n3", "inc-1", "n1") is True
    assert b.fence_lock("n3", "inc-2", "n2") is True  # a new incarnation is a new fencing
    a.put_fence_record("n3", {"fencer": "n1", "device": "pdu", "result": "off", "incarnation": "inc-1"})
    assert b.fence_records() == {"n3": {"fencer": "n1", "device": "pdu", "result": "off", "incarnation": "inc-1"}}


def test_unreachable_etcd_is_a_store_error(plugin_manager: OmhaPluginManager, cluster_name: str) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    store = EtcdStore(make_config(plugin_manager, [dead], cluster_name))
    try:
        with pytest.raises(StoreError) as info:
            store.open()
        assert dead in str(info.value) and "connection refused" in str(info.value)
        for call in (
            store.statuses,
            store.claims,
            store.fence_records,
            lambda: store.publish("n1", {"seq": 1}),
            lambda: store.documents("hactl"),
            lambda: store.put_document("hactl", "x\n", "5"),
            lambda: store.claim("web", "n1", "i"),
            lambda: store.release_claim("web", "n1"),
            lambda: store.fence_lock("n2", "i", "n1"),
        ):
            with pytest.raises(StoreError, match="etcd unreachable"):
                call()
        store.wait_for_change(0.2)  # falls back to sleeping: no exception
    finally:
        store.close()


def test_not_an_etcd_url_is_a_clear_store_error(plugin_manager: OmhaPluginManager, cluster_name: str) -> None:
    """An HTTP server that is not etcd's gateway (here: a plain http.server) is named as such."""
    port = free_ports(1)[0]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    store = EtcdStore(make_config(plugin_manager, [f"http://127.0.0.1:{port}"], cluster_name))
    try:
        deadline = time.monotonic() + 10
        while True:
            with pytest.raises(StoreError) as info:
                store.open()
            if "connection refused" not in str(info.value) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert "HTTP" in str(info.value) and "etcd" in str(info.value)
    finally:
        store.close()
        server.kill()
        server.wait()


def test_fails_over_to_a_working_endpoint(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    store = opened.store(make_config(plugin_manager, [dead, *etcd_server.endpoints], cluster_name))
    assert store.claim("web", "n1", "i") is True
    assert store.client.current_endpoint == etcd_server.endpoints[0]


def timed_wait(store: EtcdStore, timeout: float) -> float:
    start = time.monotonic()
    store.wait_for_change(timeout)
    return time.monotonic() - start


def test_wait_for_change_wakes_on_a_change_made_since_the_last_read(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    a.statuses()
    b.put_document("hactl", "web 3\n", None)  # after a's read, before its wait: must not be missed
    assert timed_wait(a, 20.0) < 20.0


def test_wait_for_change_wakes_during_the_wait(pair: tuple[EtcdStore, EtcdStore]) -> None:
    import threading

    a, b = pair
    a.claims()
    done = threading.Event()
    elapsed: list[float] = []
    waiter = threading.Thread(target=lambda: (elapsed.append(timed_wait(a, 20.0)), done.set()))
    waiter.start()
    time.sleep(0.3)
    assert not done.is_set()
    b.claim("web", "n2", "i")
    waiter.join(25)
    assert elapsed and elapsed[0] < 20.0


def test_wait_for_change_ignores_own_writes_and_heartbeats(pair: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = pair
    b.publish("n2", {"node": "n2", "incarnation": "i", "seq": 1, "time": 1.0, "groups": {}})
    a.statuses()
    a.publish("n1", {"node": "n1", "incarnation": "i", "seq": 1, "groups": {}})  # own write
    b.publish("n2", {"node": "n2", "incarnation": "i", "seq": 2, "time": 2.0, "groups": {}})  # heartbeat only
    assert timed_wait(a, 1.0) >= 0.9
    b.publish("n2", {"node": "n2", "incarnation": "i", "seq": 3, "time": 3.0, "groups": {"web": {"state": "DONE"}}})
    assert timed_wait(a, 20.0) < 20.0


def test_operator_document_round_trips_between_nodes(pair: tuple[EtcdStore, EtcdStore]) -> None:
    from omha_testing.operator_contract import check_operator_document

    check_operator_document(*pair)
