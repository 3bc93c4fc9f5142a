"""A daemon's read of the cluster must never see a node that stopped gracefully as "lost while holding a group".

Found by the chaos campaign on etcd (seed 4004): a daemon stopped with SIGTERM releases its claims, then revokes
its lease; another daemon read the claims (still there) and then the members (already gone) in two requests,
concluded "n1 lost while holding g3", and fenced the node that had just stopped cleanly. Reading the members
first makes the read consistent for a clean stop: a node seen gone had released its claims before it left.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from etcd_support import Opened, make_config
from omha_testing.etcd import EtcdCluster

from omha_core.config import validate_config
from omha_core.node import Daemon
from omha_core.plugins import OmhaPluginManager


def test_a_clean_stop_between_two_reads_never_looks_like_a_loss_holding_a_group(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened, tmp_path: Path
) -> None:
    urls = etcd_server.endpoints
    store1, member1 = opened.member(make_config(plugin_manager, urls, cluster_name, node="n1", dead_after=5))
    assert store1.claim("g3", "n1", "i1")
    raw = {
        "node": "n3",
        "cluster": {"name": cluster_name, "store": "etcd", "membership": "etcd"},
        "timing": {"dead_after": 5},
        "etcd": {"endpoints": urls, "timeout": 1.0},
        "daemon": {"state_dir": str(tmp_path / "n3")},
    }
    observer = Daemon(validate_config(raw, "omha.toml", plugin_manager), plugin_manager)
    try:
        stopped = []

        def stop_n1_after(read: Any) -> Any:
            """The first of the two reads returns, then n1 stops cleanly (release, then leave), as at a shutdown."""

            def wrapped(*args: Any) -> Any:
                result = read(*args)
                if not stopped:
                    store1.release_claim("g3", "n1")
                    member1.close()
                    stopped.append(True)
                return result

            return wrapped

        observer.store.claims = stop_n1_after(observer.store.claims)  # type: ignore[method-assign]
        observer.membership.up_nodes = stop_n1_after(observer.membership.up_nodes)  # type: ignore[method-assign]
        seen = observer.peers.read()
        assert stopped
        assert seen.up is not None
        held = seen.claims.get("g3", {}).get("node") == "n1"
        assert not (held and "n1" not in seen.up), f"n1 seen gone while holding g3: claims {seen.claims}, up {seen.up}"
    finally:
        observer.membership.close()
        observer.store.close()
        os.close(observer._lock_fd)


def test_a_clean_stop_leaves_its_final_status_so_a_stale_stopping_one_never_looks_like_a_loss(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened, tmp_path: Path
) -> None:
    """Found by the chaos campaign on etcd with a ``@mount`` group (seed 3332): a node stopping cleanly published
    its group STOPPING, then its final status, then revoked its lease, which deleted that final status at once. An
    observer that had read only the STOPPING one kept it, saw the node gone, and fenced it "lost while holding
    gm". The final status of a clean stop now outlives the lease, so the observer reads it."""
    urls = etcd_server.endpoints
    store1, member1 = opened.member(make_config(plugin_manager, urls, cluster_name, node="n1", dead_after=5))
    stopping = {"node": "n1", "incarnation": "i1", "seq": 1, "shutting_down": True, "stopped": False}
    store1.publish("n1", {**stopping, "groups": {"gm": {"level": "run", "state": "STOPPING"}}})
    raw = {
        "node": "n3",
        "cluster": {"name": cluster_name, "store": "etcd", "membership": "etcd"},
        "timing": {"dead_after": 5},
        "etcd": {"endpoints": urls, "timeout": 1.0},
        "daemon": {"state_dir": str(tmp_path / "n3")},
    }
    observer = Daemon(validate_config(raw, "omha.toml", plugin_manager), plugin_manager)
    try:

        def lost_holding() -> dict[str, str]:
            seen = observer.peers.read()
            observer.peers.observe(seen.statuses)
            alive = observer.peers.alive(seen.up)
            return observer.peers.lost_holding_groups(alive, {g: c.get("node", "?") for g, c in seen.claims.items()})

        assert lost_holding() == {}  # n1 is a member, stopping gm
        final = {**stopping, "seq": 2, "stopped": True, "groups": {"gm": {"level": "stop", "state": "DONE"}}}
        store1.publish("n1", final)
        member1.close()  # the clean leave, as at the end of the daemon's shutdown
        assert lost_holding() == {}, "a node that stopped cleanly was taken for lost while holding gm"
        assert store1.statuses()["n1"] == final  # status shows it stopped rather than forgetting it
    finally:
        observer.membership.close()
        observer.store.close()
        os.close(observer._lock_fd)


def test_a_leave_that_was_not_clean_takes_the_status_with_the_lease(
    etcd_server: EtcdCluster, plugin_manager: OmhaPluginManager, cluster_name: str, opened: Opened
) -> None:
    """Only a status saying ``stopped`` outlives the lease; any other goes with it, as a dead node's does."""
    store1, member1 = opened.member(make_config(plugin_manager, etcd_server.endpoints, cluster_name, node="n1"))
    store1.publish("n1", {"node": "n1", "incarnation": "i1", "seq": 1, "shutting_down": True, "stopped": False})
    member1.close()
    assert "n1" not in store1.statuses()
