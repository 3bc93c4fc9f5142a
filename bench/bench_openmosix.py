"""Figures for the openmosix store and membership on a fake openMosix tree (see bench/README.md).

    .venv/bin/python bench/bench_openmosix.py [--reps 31] [--nodes 3,16,64] [--failovers 3]

Per cluster size: reading the kernel table, one cycle's store reads (statuses, claims, fence records), one
publish (the node's status, and hastat from the view it carries), getlatest (documents + adopt of a new
version), an uncontended claim + release, and the same claim raced by 5 processes. With ``--failovers N``, also
the time three ``omha daemon`` processes on a fake tree take to restart a group elsewhere after its node leaves
openMosix (status bit cleared, daemon killed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from omha_membership_openmosix.membership import OpenMosixMembership  # noqa: E402
from omha_membership_openmosix.store import OpenMosixStore  # noqa: E402
from omha_testing.mosix import FakeMosix, MosixCluster  # noqa: E402


def timed(fn: Callable[[], Any], reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(label: str, samples: list[float]) -> None:
    print(f"| {label} | {statistics.median(samples):.2f} | {min(samples):.2f} | {max(samples):.2f} |")


def store_figures(n: int, reps: int, base: Path) -> None:
    mosix = FakeMosix(base / f"tree{n}", nodes=range(1, n + 1))
    stores = {i: OpenMosixStore(mosix.config(i)) for i in range(1, n + 1)}
    for i, s in stores.items():
        s.open()
        groups = {f"g{i}": {"level": "start", "state": "DONE"}}
        s.publish(str(i), {"node": str(i), "incarnation": "x", "seq": 1, "groups": groups})
        s.put_document("cltab", f"g{i}:a:start:respawn:sleep 1\n", None)
    me = stores[1]
    member = OpenMosixMembership(mosix.config(1), me)
    row(f"{n} nodes: up_nodes() (read /proc/hpc)", timed(member.up_nodes, reps))
    row(f"{n} nodes: statuses()", timed(me.statuses, reps))
    doc = {"node": "1", "incarnation": "x", "seq": 2, "groups": {}, "view": {"nodes": {}, "quorum": {"have": True}}}
    row(f"{n} nodes: publish() (status + hastat)", timed(lambda: me.publish("1", doc), reps))
    row(f"{n} nodes: claims() + fence_records()", timed(lambda: (me.claims(), me.fence_records()), reps))

    counter = iter(range(10**6))

    def getlatest() -> None:
        stores[n].put_document("hactl", f"g1 start\n# {next(counter)}\n", None)
        doc = me.documents("hactl")[0]
        me.adopt("hactl", doc)

    row(f"{n} nodes: put_document on one node, documents() + adopt() on another", timed(getlatest, reps))

    def claim_release() -> None:
        assert me.claim("web", "1", "x")
        me.release_claim("web", "1")

    row(f"{n} nodes: claim + release, uncontended", timed(claim_release, reps))

    worker = [sys.executable, "-m", "omha_testing.claim_worker"]
    samples = []
    racers = range(1, min(5, n) + 1)
    for r in range(max(3, reps // 6)):
        tmp = base / f"race{n}.{r}"
        tmp.mkdir()
        procs = [
            subprocess.Popen(
                [
                    *worker,
                    json.dumps(mosix.raw_config(i)),
                    str(tmp / f"ready{i}"),
                    str(tmp / "go"),
                    str(tmp / f"out{i}"),
                    "10",
                ],
                cwd=ROOT,
            )
            for i in racers
        ]
        while not all((tmp / f"ready{i}").exists() for i in racers):
            time.sleep(0.01)
        t = time.perf_counter()
        (tmp / "go").touch()
        for p in procs:
            p.wait()
        samples.append((time.perf_counter() - t) * 1000 / 10)
        for g in range(10):
            holder = me.claims()[f"g{g}"]["node"]
            stores[int(holder)].release_claim(f"g{g}", holder)
        for i in range(1, n + 1):
            for lock in (mosix.node_dir(i) / "fence").glob("99.*"):
                lock.unlink()
    row(f"{n} nodes: one claim raced by min(5, N) processes (wall time per group)", samples)


def failover_figures(count: int, base: Path) -> None:
    cltab = "web:plan:plan:wait:true\nweb:fit:test:test:true\nweb:srv:start:respawn:sleep 1000\n"
    samples = []
    for r in range(count):
        c = MosixCluster(base / f"c{r}", FakeMosix(base / f"fo{r}"), cltab=cltab, hactl="web start\n")
        try:
            c.start()
            first = c.wait_running("web", timeout=60)
            t = time.perf_counter()
            c.leave(first)
            c.wait_running("web", timeout=60, exclude=(first,))
            samples.append((time.perf_counter() - t) * 1000)
        finally:
            c.stop()
    row("3 daemons: node leaves openMosix -> group at its level elsewhere (no fence device)", samples)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=31)
    ap.add_argument("--nodes", default="3,16,64")
    ap.add_argument("--failovers", type=int, default=3)
    args = ap.parse_args()
    print("| figure (ms) | median | min | max |\n| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="bench-openmosix-") as tmp:
        for n in (int(x) for x in args.nodes.split(",")):
            store_figures(n, args.reps, Path(tmp))
        if args.failovers:
            failover_figures(args.failovers, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
