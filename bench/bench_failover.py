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
import statistics
import tempfile
import time
from pathlib import Path

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
    times: list[float] = []
    try:
        cluster.start()
        for trial in range(args.trials):
            victim = cluster.wait_for("web running", lambda: cluster.running("web"), 60)[0]
            t0 = time.monotonic()
            if args.fenced:
                cluster.kill(victim, signal.SIGSTOP)
            else:
                cluster.kill(victim, signal.SIGKILL)
            while True:
                now_running = [n for n in cluster.running("web") if n != victim]
                if now_running:
                    break
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"trial {trial}: no failover in 60 s")
                time.sleep(0.02)
            took = time.monotonic() - t0
            times.append(took)
            print(f"trial {trial + 1:2d}: {victim} -> {now_running[0]} in {took:.2f} s", flush=True)
            proc = cluster.procs[victim]
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
            cluster.start(victim)
            cluster.wait_for(f"{victim} rejoined", lambda v=victim: cluster.report()["nodes"][v]["state"] == "up", 60)
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    kind = "SIGSTOP + fencing (command device)" if args.fenced else "SIGKILL, no fencing device"
    print(
        f"\nfailover ({kind}), heartbeat {args.heartbeat:g} s, dead_after {args.dead_after:g} s, "
        f"{len(times)} trials: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s"
    )


if __name__ == "__main__":
    main()
