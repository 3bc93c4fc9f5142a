"""Failover time: three daemons on one machine, SIGKILL (or SIGSTOP + fencing) the node running a group,
time until the group is DONE at its run level on another node, as published in the store.

    python bench/bench_failover.py [--trials 20] [--fenced] [--heartbeat 0.5 --dead-after 2.0]

Defaults are omha's default timings. With ``--fenced`` the node is frozen (SIGSTOP, so its processes keep
running) and fenced through a ``command`` device that kills the node's daemon and every process it started
before the group may move. Between trials the victim is restarted and rejoins.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from failover_trials import failover_trials, summary

from omha_core.localcluster import LocalCluster, fence_device


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--fenced", action="store_true")
    ap.add_argument("--heartbeat", type=float, default=0.5)
    ap.add_argument("--dead-after", type=float, default=2.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-failover-"))
    names = ["n1", "n2", "n3"]
    timing = {"heartbeat": args.heartbeat, "dead_after": args.dead_after, "settle": args.dead_after}
    cluster = LocalCluster(
        tmp,
        names,
        cltab="web:srv:run:respawn:exec sleep 100000\n",
        hactl="web run\n",
        config={"cluster": {"name": f"bench-{os.getpid()}"}, "timing": timing, "fencing": {"action": "off"}},
        devices=[fence_device(tmp, names)] if args.fenced else [],
    )
    try:
        cluster.start()
        times = failover_trials(cluster, args.trials, "failover", signal.SIGSTOP if args.fenced else signal.SIGKILL)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    kind = "SIGSTOP + fencing (command device)" if args.fenced else "SIGKILL, no fencing device"
    print(f"\nfailover ({kind}), heartbeat {args.heartbeat:g} s, dead_after {args.dead_after:g} s")
    print(summary("failover", times))


if __name__ == "__main__":
    main()
