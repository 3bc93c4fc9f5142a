"""The ``[http]`` listener: how long a scrape and a page poll take, and what scraping costs the decision cycle.

Three ``omha daemon`` processes on this machine (omha's default timings), one group, the listener on n1. Two
phases of ``--seconds`` each: n1 left alone, then n1 scraped back to back by one client alternating ``/metrics``
and ``/api/v1/page``. Printed: request latencies, and n1's decision-cycle duration in each phase, read from its
own ``omha_decision_cycle_seconds`` histogram (mean, and the bucket holding the 90th percentile).

    .venv/bin/python bench/bench_http.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from omha_core.localcluster import LocalCluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cycle_histogram(url: str) -> tuple[float, float, dict[float, float]]:
    """(sum, count, cumulative buckets) of n1's decision-cycle histogram."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read().decode()
    total = count = 0.0
    buckets: dict[float, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name != "omha_decision_cycle_seconds":
            continue
        for s in fam.samples:
            if s.name.endswith("_sum"):
                total = s.value
            elif s.name.endswith("_count"):
                count = s.value
            elif s.name.endswith("_bucket"):
                buckets[float(s.labels["le"])] = s.value
    return total, count, buckets


def describe(before: tuple[float, float, dict[float, float]], after: tuple[float, float, dict[float, float]]) -> str:
    n = after[1] - before[1]
    mean = (after[0] - before[0]) / n if n else float("nan")
    p90 = next((le for le in sorted(after[2]) if after[2][le] - before[2].get(le, 0) >= 0.9 * n), float("inf"))
    return f"{int(n)} cycles, mean {mean * 1000:.1f} ms, p90 <= {p90 * 1000:g} ms"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="omha-bench-http-") as tmp:
        c = LocalCluster(Path(tmp), 3, cltab="web:srv:run:respawn:sleep 100000\n", hactl="web run\n")
        c.sections["timing"] = {"heartbeat": 0.5, "dead_after": 2.0}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        for node in c.names:
            c.sections["http"] = {"listen": f"127.0.0.1:{port}"} if node == "n1" else {}
            c.write_config(node)
        try:
            c.start()
            c.wait_for("web running", lambda: c.running("web"), 60)
            time.sleep(2)
            quiet0 = cycle_histogram(url)
            time.sleep(args.seconds)
            quiet1 = cycle_histogram(url)
            latencies: dict[str, list[float]] = {"/metrics": [], "/api/v1/page": []}
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                for path, seen in latencies.items():
                    t0 = time.perf_counter()
                    urllib.request.urlopen(url + path, timeout=10).read()
                    seen.append(time.perf_counter() - t0)
            busy1 = cycle_histogram(url)
        finally:
            c.stop()
    print(f"n1 decision cycle, not scraped:        {describe(quiet0, quiet1)}")
    print(f"n1 decision cycle, scraped nonstop:    {describe(quiet1, busy1)}")
    for path, seen in latencies.items():
        median, p90 = statistics.median(seen) * 1000, statistics.quantiles(seen, n=10)[-1] * 1000
        print(f"GET {path:<14} {len(seen)} requests, median {median:.1f} ms, p90 {p90:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
