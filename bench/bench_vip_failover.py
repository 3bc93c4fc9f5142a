"""Benchmark: VIP failover time end to end, two ``omha`` daemons each in its own network namespace.

The setup of ``plugins/resource_vip/tests/test_vip_cluster.py``: node namespaces A and B and a client on one
bridge (``omha_testing.lan``, documentation prefixes only, nothing leaves the namespaces),
daemon ``n1`` inside A and ``n2`` inside B (``ip netns exec``), quorum policy ``ignore``, omha's default timings
(heartbeat 0.5 s, dead_after 2.0 s) and the group::

    web:ipt:test:test:@vip 192.0.2.10/24      (left out with --no-test-entry)
    web:ip:run:respawn:@vip 192.0.2.10/24

Each trial: a pinger inside the client namespace sends an ICMP echo request to the VIP every 2 ms and watches
the bridge with a packet socket, so it tells replies apart by the Ethernet source address. Once it has seen a
reply from the holder's MAC, the holder's daemon gets SIGKILL (its guard makes the agent release the address);
the clock runs from that signal to the first echo reply from the other node's MAC. CLOCK_MONOTONIC is shared by
all network namespaces, so the pinger's timestamps compare with the driver's. Also printed: when the store first
showed the group running on the new node. The killed daemon is restarted between trials, so the VIP moves back
and forth.

Usage: ``sudo .venv/bin/python bench/bench_vip_failover.py [--trials 10] [--no-test-entry]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_testing.lan import Lan, Node  # noqa: E402
from omha_testing.netns import as_node  # noqa: E402

from bench import _pinger  # noqa: E402
from omha_core.localcluster import LocalCluster, power_off  # noqa: E402

VIP = "192.0.2.10"
PING_EVERY = 0.002
DEFAULT_TIMING = {"heartbeat": 0.5, "dead_after": 2.0, "settle": 2.0}


# -- the driver ----------------------------------------------------------------------------------------------


def wait(what: str, predicate: Callable[[], object], timeout: float) -> None:
    """Poll ``predicate`` until true; stop the benchmark naming ``what`` after ``timeout`` seconds."""
    _pinger.wait("bench_vip_failover", what, predicate, timeout)


def holds(lan: Lan, node: Node) -> bool:
    return f"{VIP}/24" in lan.addresses(node.ns, node.dev)


def node_up(cluster: LocalCluster, node: str) -> bool:
    return bool(cluster.report()["nodes"][node]["state"] == "up")


def trial(cluster: LocalCluster, lan: Lan, nodes: dict[str, Node], timeout: float) -> tuple[str, str, float, float]:
    """Kill the holder's daemon; (holder, new node, seconds to first reply from it, seconds to running in store)."""
    wait("web running", lambda: cluster.running("web"), 60)
    holder = cluster.running("web")[0]
    other = next(n for n in nodes if n != holder)
    wait(f"the VIP on {holder}", lambda: holds(lan, nodes[holder]), 20)
    cmd = [
        *("ip", "netns", "exec", lan.client, sys.executable, __file__, "--pinger", VIP, "--timeout", str(timeout)),
        *("--old", nodes[holder].mac, "--new", nodes[other].mac),
    ]
    ping = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert ping.stdout is not None
        if ping.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench_vip_failover: the client gets no reply from the VIP at {holder}")
        t0 = time.monotonic()
        cluster.kill(holder, signal.SIGKILL)
        in_store = None
        while in_store is None:
            if other in cluster.running("web"):
                in_store = time.monotonic() - t0
            elif time.monotonic() - t0 > timeout:
                raise SystemExit(f"bench_vip_failover: web not running on {other} after {timeout:g} s")
            else:
                time.sleep(0.02)
        line = ping.stdout.readline().split()
        if not line or line[0] != "reply":
            raise SystemExit(f"bench_vip_failover: no reply from the VIP at {other} within {timeout:g} s")
        return holder, other, float(line[1]) - t0, in_store
    finally:
        ping.kill()
        ping.wait()
        if ping.stdout:
            ping.stdout.close()


def cltab(test_entry: bool) -> str:
    lines = [f"web:ipt:test:test:@vip {VIP}/24\n"] if test_entry else []
    return "".join(lines) + f"web:ip:run:respawn:@vip {VIP}/24\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--no-test-entry", action="store_true", help="leave out the test-mode @vip check")
    parser.add_argument("--heartbeat", type=float, default=DEFAULT_TIMING["heartbeat"])
    parser.add_argument("--dead-after", type=float, default=DEFAULT_TIMING["dead_after"])
    parser.add_argument("--pinger", help=argparse.SUPPRESS)
    parser.add_argument("--old", help=argparse.SUPPRESS)
    parser.add_argument("--new", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.pinger:
        return _pinger.pinger(opts.pinger, opts.old, opts.new, opts.timeout, PING_EVERY)
    if os.geteuid() != 0:
        print("bench_vip_failover: needs root (network namespaces)", file=sys.stderr)
        return 2
    timing = {"heartbeat": opts.heartbeat, "dead_after": opts.dead_after, "settle": opts.dead_after}
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-vip-failover-"))
    lan = Lan().open()
    nodes = {"n1": lan.a, "n2": lan.b}
    cluster = LocalCluster(
        tmp,
        list(nodes),
        cltab=cltab(not opts.no_test_entry),
        hactl="web run\n",
        config={"cluster": {"name": f"bench-vip-{os.getpid()}"}, "timing": timing, "quorum": {"policy": "ignore"}},
        wrap={name: as_node(node.ns) for name, node in nodes.items()},
    )
    what = "without" if opts.no_test_entry else "with"
    print(
        f"@vip failover, SIGKILL of the holder's daemon -> client's first echo reply from the new node; "
        f"{what} the test-mode check; heartbeat {opts.heartbeat:g} s, dead_after {opts.dead_after:g} s; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    replies: list[float] = []
    stored: list[float] = []
    try:
        cluster.start()
        for n in range(opts.trials):
            holder, other, reply, in_store = trial(cluster, lan, nodes, opts.timeout)
            replies.append(reply)
            stored.append(in_store)
            print(
                f"trial {n + 1:2d}: {holder} -> {other}: running in store {in_store:.2f} s, first reply {reply:.2f} s"
            )
            cluster.start(holder)
            wait(f"{holder} rejoined", partial(node_up, cluster, holder), 60)
    finally:
        cluster.stop()
        for name in nodes:
            power_off(tmp, name)
        lan.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for name, values in (("group running in the store", stored), ("client's first reply from new node", replies)):
        print(
            f"{name:<36} median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
            f"max {max(values):.2f} s  [n={len(values)}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
