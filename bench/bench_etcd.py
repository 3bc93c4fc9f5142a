"""Benchmark of the etcd store and membership, on real etcd servers started on 127.0.0.1 (tmpfs data).

Figures (median, min, max over ``--reps`` runs unless said otherwise):

- one call of each store operation (publish, statuses of 3 nodes, claim won / lost, CAS write, keepalive,
  up_nodes), on a single member and through a follower of a 3-member cluster;
- watch wake-up: from another node's write to ``wait_for_change`` returning;
- loss detection: from a node's last keepalive to another node seeing its member key gone (woken by the watch),
  with ``dead_after = 2`` (lease TTL 2 s), ``--loss-reps`` trials;
- leader loss: from SIGKILL of the raft leader of a 3-member cluster to the next successful CAS write, with
  the test fixture's 500 ms election timeout, ``--leader-reps`` trials (a new cluster each).

The daemon's end-to-end failover (etcd vs the shared directory) needs the HA daemon and is not measured here.

Usage: ``.venv/bin/python bench/bench_etcd.py [--reps 200] [--loss-reps 10] [--leader-reps 5]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_membership_etcd.membership import EtcdMembership  # noqa: E402
from omha_membership_etcd.store import EtcdStore  # noqa: E402
from omha_testing.etcd import etcd_cluster  # noqa: E402

from omha_core.config import Config, validate_config  # noqa: E402
from omha_core.errors import StoreError  # noqa: E402


def config(endpoints: list[str], cluster: str, node: str, dead_after: float = 2.0) -> Config:
    raw = {
        "node": node,
        "cluster": {"name": cluster, "store": "etcd", "membership": "etcd"},
        "timing": {"dead_after": dead_after},
        "etcd": {"endpoints": endpoints},
    }
    return validate_config(raw)


def row(label: str, samples: list[float], unit: str = "ms") -> None:
    scale = 1000.0 if unit == "ms" else 1.0
    med, lo, hi = statistics.median(samples) * scale, min(samples) * scale, max(samples) * scale
    print(f"| {label} | {med:.2f} {unit} | {lo:.2f} {unit} | {hi:.2f} {unit} |", flush=True)


def timed(call: Callable[[], object], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def operations(endpoints: list[str], label: str, reps: int) -> None:
    cluster = "ops-" + "".join(c if c.isalnum() else "-" for c in label)
    stores = [EtcdStore(config(endpoints, cluster, f"n{i}")) for i in range(3)]
    s1, s2 = stores[:2]
    member = EtcdMembership(s1.config, s1)
    for s in stores:
        s.open()
    member.open()
    try:
        for i, s in enumerate(stores):
            s.publish(f"n{i}", {"node": f"n{i}", "incarnation": "i", "seq": 0, "groups": {}})
        seq = iter(range(1, 10**9))
        row(f"{label}: publish status", timed(lambda: s1.publish("n0", {"node": "n0", "seq": next(seq)}), reps))
        row(f"{label}: statuses (3 nodes)", timed(s2.statuses, reps))
        groups = iter(range(10**9))
        row(f"{label}: claim, won", timed(lambda: s1.claim(f"g{next(groups)}", "n0", "i"), reps))
        s1.claim("held", "n0", "i")
        row(f"{label}: claim, lost", timed(lambda: s2.claim("held", "n1", "i"), reps))
        version = [s1.put_document("hactl", "web 3\n", None)]

        def cas() -> None:
            version[0] = s1.put_document("hactl", f"web {version[0]}\n", version[0])

        row(f"{label}: CAS write of hactl", timed(cas, reps))
        row(f"{label}: lease keepalive (heartbeat)", timed(member.heartbeat, reps))
        row(f"{label}: up_nodes", timed(member.up_nodes, reps))
    finally:
        member.close()
        for s in stores:
            s.close()


def watch_wakeup(endpoints: list[str], reps: int) -> None:
    waiter = EtcdStore(config(endpoints, "wake", "n1"))
    writer = EtcdStore(config(endpoints, "wake", "n2"))
    waiter.open()
    writer.open()
    samples = []
    try:
        for i in range(reps):
            waiter.claims()
            stamp: list[float] = []

            def write(i: int = i, stamp: list[float] = stamp) -> None:
                time.sleep(0.02)
                stamp.append(time.perf_counter())
                writer.claim(f"g{i}", "n2", "i")

            t = threading.Thread(target=write)
            t.start()
            waiter.wait_for_change(10.0)
            woke = time.perf_counter()
            t.join()
            samples.append(woke - stamp[0])
    finally:
        waiter.close()
        writer.close()
    row("watch wake-up after another node's claim (single member)", samples)


def loss_detection(endpoints: list[str], reps: int) -> None:
    samples = []
    for trial in range(reps):
        cluster = f"loss{trial}"
        s1, s2 = EtcdStore(config(endpoints, cluster, "n1")), EtcdStore(config(endpoints, cluster, "n2"))
        m1, m2 = EtcdMembership(s1.config, s1), EtcdMembership(s2.config, s2)
        for x in (s1, s2, m1, m2):
            x.open()
        try:
            m1.heartbeat()
            last = time.perf_counter()  # n1's last keepalive: from here it is silent
            s2.statuses()
            while True:
                m2.heartbeat()
                s2.wait_for_change(0.5)
                if "n1" not in (m2.up_nodes() or set()):
                    samples.append(time.perf_counter() - last)
                    break
                if time.perf_counter() - last > 30:
                    raise RuntimeError("n1 never disappeared")
        finally:
            for x in (m2, m1, s2, s1):
                x.close()
    row("loss detection, dead_after 2 (lease TTL 2 s): last keepalive -> member key gone, seen", samples, "s")


def leader_loss(reps: int) -> None:
    samples = []
    for trial in range(reps):
        with etcd_cluster(3) as etcd:
            leader = etcd.leader()
            others = [m.client_url for m in etcd.members if m is not leader]
            store = EtcdStore(config([leader.client_url, *others], f"leader{trial}", "n1"))
            store.open()
            try:
                version = store.put_document("hactl", "web 3\n", None)
                killed = time.perf_counter()
                leader.kill()
                while True:
                    try:
                        store.put_document("hactl", "web 4\n", version)
                        break
                    except StoreError:
                        if time.perf_counter() - killed > 30:
                            raise
                samples.append(time.perf_counter() - killed)
            finally:
                store.close()
    row("leader SIGKILL -> next CAS write done (3 members, 500 ms election timeout)", samples, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--loss-reps", type=int, default=10)
    parser.add_argument("--leader-reps", type=int, default=5)
    args = parser.parse_args()
    print("| figure | median | min | max |\n| --- | --- | --- | --- |")
    with etcd_cluster(1) as single:
        operations(single.endpoints, "1 member", args.reps)
        watch_wakeup(single.endpoints, max(20, args.reps // 4))
        loss_detection(single.endpoints, args.loss_reps)
    with etcd_cluster(3) as three:
        leader = three.leader()
        follower = next(m for m in three.members if m is not leader)
        operations([follower.client_url], "3 members, via a follower", args.reps)
    leader_loss(args.leader_reps)


if __name__ == "__main__":
    main()
