"""``omha move`` latency: three daemons on one machine, omha's default timings, one group; each trial moves it
to another node and times from the command's start until the group is DONE at its run level there, as
published in the store (the old holder stops it and releases its claim first).

    python bench/bench_move.py [--trials 10] [--heartbeat 0.5 --dead-after 2.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from failover_trials import summary

from omha_core.localcluster import LocalCluster


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--heartbeat", type=float, default=0.5)
    ap.add_argument("--dead-after", type=float, default=2.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-move-"))
    names = ["n1", "n2", "n3"]
    timing = {"heartbeat": args.heartbeat, "dead_after": args.dead_after, "settle": args.dead_after}
    cluster = LocalCluster(
        tmp,
        names,
        cltab="web:srv:run:respawn:exec sleep 100000\n",
        hactl="web run\n",
        config={"cluster": {"name": f"bench-{os.getpid()}"}, "timing": timing},
    )
    times: list[float] = []
    try:
        cluster.start()
        holder = cluster.wait_running("web", 60)
        for trial in range(args.trials):
            target = names[(names.index(holder) + 1) % len(names)]
            t0 = time.monotonic()
            cluster.omha("n1", "move", "web", target)
            cluster.wait_for(f"web on {target}", lambda t=target: cluster.running("web") == [t], 60)  # type: ignore[misc]
            times.append(time.monotonic() - t0)
            print(f"move {trial + 1}: {holder} -> {target} in {times[-1]:.2f} s", flush=True)
            holder = target
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nomha move, heartbeat {args.heartbeat:g} s, dead_after {args.dead_after:g} s")
    print(summary("move", times))


if __name__ == "__main__":
    main()
