"""Failover time on etcd vs the shared directory: same machine, same run, same timings.

Three ``omha daemon`` processes run one group; the node running it is SIGKILLed; the time is taken from the kill
until the group is DONE at its run level on another node, as the store publishes it (a report read through the
cluster's own store: files for the shared directory, etcd for etcd). Between trials the victim is restarted and
rejoins. The shared directory's trials run first, then etcd's (one etcd member on 127.0.0.1, data on tmpfs).

With no fence device the victim's claim is broken once it is seen lost: through the shared directory when its
status stops changing for ``dead_after``; on etcd the same, or earlier when its lease (TTL ``dead_after``, whole
seconds) expires and the watch wakes the survivors.

    .venv/bin/python bench/bench_etcd_failover.py [--trials 20] [--heartbeat 0.5] [--dead-after 3.0] [--etcd-members 1]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_membership_etcd.options import lease_ttl  # noqa: E402

from omha_core.localcluster import LocalCluster  # noqa: E402
from tests.plugins.membership_etcd.etcd_fixture import EtcdCluster, etcd_cluster  # noqa: E402
from tests.plugins.membership_etcd.test_daemons import EtcdLocalCluster  # noqa: E402

CLTAB = "web:srv:run:respawn:exec sleep 100000\n"
HACTL = "web run\n"
NAMES = ["n1", "n2", "n3"]


def rejoined(cluster: LocalCluster, node: str) -> bool:
    return bool(cluster.report()["nodes"].get(node, {}).get("state") == "up")


def trials(cluster: LocalCluster, count: int, label: str) -> list[float]:
    """``count`` failovers of ``web`` by SIGKILL of its node; seconds from the kill to DONE elsewhere."""
    times: list[float] = []
    cluster.start()
    for trial in range(count):
        victim = cluster.wait_for("web running", lambda: cluster.running("web"), 60)[0]
        t0 = time.monotonic()
        cluster.kill(victim, signal.SIGKILL)
        while True:
            now_running = [n for n in cluster.running("web") if n != victim]
            if now_running:
                break
            if time.monotonic() - t0 > 60:
                raise SystemExit(f"{label} trial {trial + 1}: no failover in 60 s\n{cluster.diagnostics()}")
            time.sleep(0.02)
        took = time.monotonic() - t0
        times.append(took)
        print(f"{label} trial {trial + 1:2d}: {victim} -> {now_running[0]} in {took:.2f} s", flush=True)
        cluster.start(victim)
        cluster.wait_for(f"{victim} rejoined", functools.partial(rejoined, cluster, victim), 60)
    return times


def run(make: Callable[[Path], LocalCluster], count: int, label: str) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"omha-bench-{label}-"))
    cluster = make(tmp)
    try:
        return trials(cluster, count, label)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def summary(label: str, times: list[float]) -> str:
    return (
        f"{label:>9}: median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
        f"({len(times)} trials)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--heartbeat", type=float, default=0.5)
    ap.add_argument("--dead-after", type=float, default=3.0)
    ap.add_argument("--etcd-members", type=int, default=1)
    args = ap.parse_args()
    timing: dict[str, Any] = {"heartbeat": args.heartbeat, "dead_after": args.dead_after, "settle": 1.0}
    config: dict[str, dict[str, Any]] = {"cluster": {"name": f"bench-{os.getpid()}"}, "timing": timing}

    shared = run(lambda tmp: LocalCluster(tmp, NAMES, cltab=CLTAB, hactl=HACTL, config=config), args.trials, "sharedfs")

    def on_etcd(etcd: EtcdCluster) -> Callable[[Path], LocalCluster]:
        def make(tmp: Path) -> LocalCluster:
            c = EtcdLocalCluster(tmp, etcd, nodes=NAMES, config={"timing": timing})
            c.load(CLTAB, HACTL)
            return c

        return make

    with etcd_cluster(args.etcd_members) as etcd:
        on_etcd_times = run(on_etcd(etcd), args.trials, "etcd")

    print(
        f"\nfailover by SIGKILL, no fence device; heartbeat {args.heartbeat:g} s, dead_after {args.dead_after:g} s "
        f"(etcd: {args.etcd_members} member(s), lease TTL {lease_ttl(args.dead_after)} s)"
    )
    print(summary("sharedfs", shared))
    print(summary("etcd", on_etcd_times))


if __name__ == "__main__":
    main()
