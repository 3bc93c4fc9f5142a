"""A whole ``omha daemon`` at rest: its CPU and memory with many entries, and many daemons side by side.

Two shapes, omha's default timings (heartbeat 0.5 s, dead_after 2 s), a shared-directory cluster on this machine
(:class:`omha_core.localcluster.LocalCluster`) with the local ``command`` fence device:

- ``--nodes 1 --groups 50 --entries 10``: one daemon holding 500 ``respawn`` entries (``sleep``), idle once all
  are DONE;
- ``--nodes 20 --groups 20 --entries 1``: twenty daemons, one group each (spread by the daemons themselves).

Once every group runs, each daemon's CPU time (user + system from ``/proc/PID/stat``, the daemon process alone
and with its guard) is sampled over ``--duration`` seconds, as a percentage of one core, with its RSS (and the
guard's) at the end. Then each log is searched for a failover: "lost while holding", fencing, "moved from", a
claim lost. Nothing is injected, so any is a false failover.

Usage: ``python bench/bench_daemon_scale.py [--nodes 1] [--groups 50] [--entries 10] [--duration 60]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_core.localcluster import LocalCluster, fence_device  # noqa: E402

FAILOVER_SIGNS = re.compile(r"lost while holding|: fencing|fenced by|moved from|claim lost|stopping here")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def guard_of(pid: int) -> int | None:
    """The daemon's guard: its child running ``guard.py``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                if b"guard.py" in fh.read():
                    return int(entry)
        except (OSError, ValueError, IndexError):
            continue
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--groups", type=int, default=50)
    ap.add_argument("--entries", type=int, default=10, help="respawn entries per group")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of measurement once all groups run")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))  # clean up (finally) when stopped by a time-out
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-scale-"))
    names = [f"n{i}" for i in range(1, args.nodes + 1)]
    groups = [f"g{i}" for i in range(1, args.groups + 1)]
    cltab = "".join(f"{g}:{g}e{e}:run:respawn:sleep 100000\n" for g in groups for e in range(args.entries))
    cluster = LocalCluster(
        tmp,
        names,
        cltab=cltab,
        hactl="".join(f"{g} run\n" for g in groups),
        config={"cluster": {"name": f"bench-scale-{os.getpid()}"}},
        devices=[fence_device(tmp, names)],
    )
    cluster.sections["timing"] = {}  # omha's defaults, not LocalCluster's fast test timings
    cluster.sections["init"] = {}
    for node in names:
        cluster.write_config(node)
    try:
        cluster.start()
        cluster.wait_for("every group running", lambda: all(cluster.running(g) for g in groups), 300)
        time.sleep(min(10.0, args.duration / 4))  # let start-up work end
        pids = {n: cluster.procs[n].pid for n in names}
        guards = {n: guard_of(pid) for n, pid in pids.items()}
        t0 = time.monotonic()
        before = {n: (cpu_seconds(pids[n]), cpu_seconds(guards[n] or 0)) for n in names}
        time.sleep(args.duration)
        wall = time.monotonic() - t0
        after = {n: (cpu_seconds(pids[n]), cpu_seconds(guards[n] or 0)) for n in names}
        daemon_cpu = {n: 100 * (after[n][0] - before[n][0]) / wall for n in names}
        guard_cpu = {n: 100 * (after[n][1] - before[n][1]) / wall for n in names}
        rss = {n: rss_mb(pids[n]) for n in names}
        guard_rss = {n: rss_mb(guards[n] or 0) for n in names}
        signs = {n: [ln for ln in cluster.log(n).splitlines() if FAILOVER_SIGNS.search(ln)] for n in names}
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"{args.nodes} daemon(s), {args.groups} groups x {args.entries} entries, {wall:.0f} s measured, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    print("| figure | median | max |\n| --- | --- | --- |")
    for label, values in (
        ("daemon CPU, % of one core", daemon_cpu),
        ("guard CPU, % of one core", guard_cpu),
        ("daemon RSS, MB", rss),
        ("guard RSS, MB", guard_rss),
    ):
        vals = list(values.values())
        print(f"| {label} | {statistics.median(vals):.2f} | {max(vals):.2f} |")
    false = sum(len(v) for v in signs.values())
    print(f"false failovers (log lines showing one): {false}")
    for node, lines in signs.items():
        for line in lines[:5]:
            print(f"  {node}: {line}")
    return 1 if false else 0


if __name__ == "__main__":
    sys.exit(main())
