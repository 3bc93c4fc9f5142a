"""The failover trial loop shared by the failover benchmarks.

A trial takes the node that runs ``web``, stops it with a signal (SIGKILL: dead; SIGSTOP: hung, so only a fence
can make the move safe), and times from the signal until another node publishes ``web`` DONE at its run level.
The victim is then restarted and must rejoin before the next trial, so every trial starts from a whole cluster.
"""

from __future__ import annotations

import functools
import signal
import statistics
import time

from omha_core.localcluster import LocalCluster


def rejoined(cluster: LocalCluster, node: str) -> bool:
    """True once ``node`` is up again in the cluster's report."""
    return bool(cluster.report()["nodes"].get(node, {}).get("state") == "up")


def failover_trials(
    cluster: LocalCluster, count: int, label: str, sig: signal.Signals = signal.SIGKILL, limit: float = 60.0
) -> list[float]:
    """Run ``count`` failovers of ``web`` on a started ``cluster``; return the seconds each took."""
    times: list[float] = []
    for trial in range(1, count + 1):
        victim = cluster.wait_for("web running", lambda: cluster.running("web"), limit)[0]
        t0 = time.monotonic()
        cluster.kill(victim, sig)
        while not (now_running := [n for n in cluster.running("web") if n != victim]):
            if time.monotonic() - t0 > limit:
                raise SystemExit(f"{label} trial {trial}: no failover in {limit:g} s\n{cluster.diagnostics()}")
            time.sleep(0.02)
        took = time.monotonic() - t0
        times.append(took)
        print(f"{label} trial {trial:2d}: {victim} -> {now_running[0]} in {took:.2f} s", flush=True)
        proc = cluster.procs[victim]
        if proc.poll() is None:  # frozen and not fenced by a kill: thaw it so it can be killed and restarted
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
        cluster.start(victim)
        cluster.wait_for(f"{victim} rejoined", functools.partial(rejoined, cluster, victim), limit)
    return times


def summary(label: str, times: list[float]) -> str:
    """One line: median, min and max of ``times``."""
    return (
        f"{label}: median {statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s "
        f"({len(times)} trials)"
    )
