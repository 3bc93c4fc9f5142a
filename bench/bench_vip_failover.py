"""Benchmark: VIP failover time end to end, two ``omha`` daemons each in its own network namespace.

The setup of ``tests/plugins/resource_vip/test_vip_cluster.py``: node namespaces A and B and a client on one
bridge (``tests/plugins/resource_vip/lan.py``, documentation prefixes only, nothing leaves the namespaces),
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
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_core.localcluster import LocalCluster, power_off  # noqa: E402
from tests.plugins.resource_vip.lan import Lan, Node  # noqa: E402

VIP = "192.0.2.10"
PING_EVERY = 0.002
ETH_P_IP = 0x0800
DEFAULT_TIMING = {"heartbeat": 0.5, "dead_after": 2.0, "settle": 2.0}


# -- the pinger, run inside the client namespace ---------------------------------------------------------------


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _echo_reply_from(frame: bytes, address: bytes, ident: int) -> str | None:
    """The source MAC of ``frame`` when it is an IPv4 echo reply from ``address`` to our ``ident``, else None."""
    if len(frame) < 34 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        return None
    ip_header = frame[14:]
    if ip_header[9] != socket.IPPROTO_ICMP or ip_header[12:16] != address:
        return None
    icmp = ip_header[(ip_header[0] & 0x0F) * 4 :]
    if len(icmp) < 8 or icmp[0] != 0 or struct.unpack_from("!H", icmp, 4)[0] != ident:
        return None
    return ":".join(f"{b:02x}" for b in frame[6:12])


def pinger(address: str, dev: str, old_mac: str, new_mac: str, timeout: float) -> int:
    """Ping ``address`` every 2 ms; say ``ready`` at the first reply from ``old_mac``, then ``reply TIME`` at the
    first from ``new_mac`` (``timeout`` if none comes)."""
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    listen.bind((dev, ETH_P_IP))
    ident, seq, ready = os.getpid() & 0xFFFF, 0, False
    target = socket.inet_aton(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        header = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
        try:
            send.sendto(header, (address, 0))
        except OSError:
            pass  # the neighbour entry failed while nobody answered: keep trying
        until = time.monotonic() + PING_EVERY
        while (left := until - time.monotonic()) > 0:
            if not select.select([listen], [], [], left)[0]:
                break
            frame = listen.recv(2048)
            now = time.monotonic()
            mac = _echo_reply_from(frame, target, ident)
            if mac == old_mac and not ready:
                ready = True
                print("ready", flush=True)
            elif mac == new_mac and ready:
                print(f"reply {now}", flush=True)
                return 0
    print("timeout", flush=True)
    return 1


# -- the driver ----------------------------------------------------------------------------------------------


def holds(lan: Lan, node: Node) -> bool:
    return f"{VIP}/24" in lan.addresses(node.ns, node.dev)


def wait(what: str, predicate: Callable[[], object], timeout: float) -> None:
    """Poll ``predicate`` until it is true; stop the benchmark naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_vip_failover: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


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
        return pinger(opts.pinger, "br0", opts.old, opts.new, opts.timeout)
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
        wrap={name: ["ip", "netns", "exec", node.ns] for name, node in nodes.items()},
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
