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
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from failover_trials import failover_trials, summary  # noqa: E402
from omha_membership_etcd.options import lease_ttl  # noqa: E402
from omha_testing.etcd import (  # noqa: E402
    EtcdCluster,
    EtcdLocalCluster,
    etcd_cluster,
)

from omha_core.localcluster import LocalCluster  # noqa: E402

CLTAB = "web:srv:run:respawn:exec sleep 100000\n"
HACTL = "web run\n"
NAMES = ["n1", "n2", "n3"]


def run(make: Callable[[Path], LocalCluster], count: int, label: str) -> list[float]:
    tmp = Path(tempfile.mkdtemp(prefix=f"omha-bench-{label}-"))
    cluster = make(tmp)
    try:
        cluster.start()
        return failover_trials(cluster, count, label)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


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
    print(summary(f"{'sharedfs':>9}", shared))
    print(summary(f"{'etcd':>9}", on_etcd_times))


if __name__ == "__main__":
    main()
