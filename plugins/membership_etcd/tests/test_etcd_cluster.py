"""A three-member etcd cluster: claims through different members, and the loss of the raft leader."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from etcd_support import Opened, make_config
from omha_testing.etcd import EtcdCluster
from test_etcd_membership import heartbeating

from omha_core.errors import StoreError
from omha_core.plugins import OmhaPluginManager

T = TypeVar("T")


def retrying(call: Callable[[], T], timeout: float = 20.0) -> T:
    """``call()``, retried while it raises StoreError (a leader election), for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_claims_through_different_members_have_one_winner(
    etcd_three: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    urls = etcd_three.endpoints
    s1 = opened.store(make_config(plugin_manager, urls, cluster_name, node="n1"))
    s2 = opened.store(make_config(plugin_manager, [*urls[1:], urls[0]], cluster_name, node="n2"))
    s3 = opened.store(make_config(plugin_manager, [*urls[2:], *urls[:2]], cluster_name, node="n3"))
    groups = [f"g{i}" for i in range(15)]
    won: dict[str, list[str]] = {g: [] for g in groups}
    lock = threading.Lock()

    def claimer(store, node: str, order: list[str]) -> None:  # type: ignore[no-untyped-def]
        for group in order:
            if store.claim(group, node, f"inc-{node}"):
                with lock:
                    won[group].append(node)

    threads = [
        threading.Thread(target=claimer, args=(s1, "n1", groups)),
        threading.Thread(target=claimer, args=(s2, "n2", groups[::-1])),
        threading.Thread(target=claimer, args=(s3, "n3", groups[7:] + groups[:7])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claims = s1.claims()
    for group in groups:
        assert len(won[group]) == 1, f"{group}: {won[group]}"
        assert claims[group]["node"] == won[group][0]


def test_killing_the_etcd_leader_keeps_store_and_membership_working(
    etcd_three: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    leader = etcd_three.leader()
    others = [m.client_url for m in etcd_three.members if m is not leader]
    # n1 talks to the leader first, n2 to a follower
    s1, m1 = opened.member(make_config(plugin_manager, [leader.client_url, *others], cluster_name, "n1", 5))
    s2, m2 = opened.member(make_config(plugin_manager, [*others, leader.client_url], cluster_name, "n2", 5))
    version = s1.put_document("hactl", "web 3\n", None)
    assert s1.claim("web", "n1", "i1")
    s1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 1})
    out: list[str] = []
    watching = threading.Event()

    def watch_membership() -> None:
        while not watching.wait(0.05):
            for node, m in (("n1", m1), ("n2", m2)):
                if not m.is_member():
                    out.append(node)

    watcher = threading.Thread(target=watch_membership)
    watcher.start()
    try:
        with heartbeating(m1), heartbeating(m2):
            leader.kill()
            etcd_three.wait_ready()
            new_version = retrying(lambda: s1.put_document("hactl", "web 4\n", version))
            assert retrying(lambda: s2.documents("hactl"))[0].text == "web 4\n"
            assert int(new_version) > int(version)
            assert retrying(lambda: s2.claim("web", "n2", "i2")) is False  # n1's claim survived
            assert retrying(lambda: s2.claim("db", "n2", "i2")) is True
            retrying(lambda: s1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 2}))
            assert retrying(s2.statuses)["n1"]["seq"] == 2
            assert retrying(m2.up_nodes) == {"n1", "n2"}
    finally:
        watching.set()
        watcher.join()
    assert out == [], f"membership lost during the election: {sorted(set(out))}"
    assert s1.client.current_endpoint != leader.client_url
