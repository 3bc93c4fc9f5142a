"""Benchmark of the ``@vip`` agent: time from the start of acquire to the client's first echo reply.

Runs as root on the same namespace segment the tests use (two nodes and a client on a bridge, documentation
prefixes only, nothing leaves the namespaces). The agent runs exactly as the daemon runs it
(``ip netns exec NODE python -m omha_core.agent vip acquire ARGS``), so each figure includes starting Python and
importing pyroute2. A pinger inside the client namespace sends an echo request every 2 ms and reports the
monotonic time of the first reply (CLOCK_MONOTONIC is shared by all network namespaces).

Scenarios, each repeated ``--reps`` times (median, min, max printed):

- cold: the address is held nowhere; acquire it on node A.
- takeover: the client has just been talking to the address at node A (its neighbour entry points at A);
  A releases, then B acquires — the failover case, where the client must learn B's MAC.
- ``--without-announce`` adds takeover with ``arp_count=0`` (a few repetitions): how long the client keeps
  sending to A's MAC when nobody tells it.

Usage: ``sudo .venv/bin/python bench/bench_vip.py [--reps 20] [--without-announce]``
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_testing.lan import Lan, Node  # noqa: E402

PING_EVERY = 0.002


def pinger(address: str, timeout: float) -> int:
    """Inside the client namespace: echo requests every 2 ms until the first reply; print its time."""
    v6 = ":" in address
    if v6:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = os.getpid() & 0xFFFF
    print("ready", flush=True)
    deadline = time.monotonic() + timeout
    seq = 0
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, ident, seq)
        if not v6:
            header = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
        try:
            sock.sendto(header, (address, 0))
        except OSError:
            pass  # unreachable while nobody holds the address: keep trying
        ready, _, _ = select.select([sock], [], [], PING_EVERY)
        while ready:
            data, source = sock.recvfrom(2048)
            now = time.monotonic()
            icmp = data if v6 else data[(data[0] & 0x0F) * 4 :]
            reply_type = 129 if v6 else 0
            if source[0] == address and icmp[0] == reply_type and struct.unpack_from("!H", icmp, 4)[0] == ident:
                print(f"reply {now}", flush=True)
                return 0
            ready, _, _ = select.select([sock], [], [], 0)
    print("timeout", flush=True)
    return 1


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def first_reply_after_acquire(lan: Lan, node: Node, vip: str, args: str, timeout: float) -> tuple[float, float]:
    """Start the pinger, then acquire on ``node``: (seconds to first reply, seconds acquire took)."""
    address = vip.split("/")[0]
    cmd = ["ip", "netns", "exec", lan.client, sys.executable, __file__, "--pinger", address, "--timeout", str(timeout)]
    ping = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert ping.stdout is not None
        if ping.stdout.readline().strip() != "ready":
            raise RuntimeError("pinger did not start")
        start = time.monotonic()
        result = lan.agent(node, "acquire", f"{vip} dev={node.dev} {args}")
        acquired = time.monotonic() - start
        if result.returncode != 0:
            raise RuntimeError(f"acquire failed: {result.stderr.strip()}")
        line = ping.stdout.readline().split()
        if not line or line[0] != "reply":
            raise RuntimeError(f"no reply from {address} within {timeout} s")
        return float(line[1]) - start, acquired
    finally:
        ping.kill()
        ping.wait()
        if ping.stdout:
            ping.stdout.close()


def release(lan: Lan, node: Node, vip: str) -> None:
    result = lan.agent(node, "release", f"{vip} dev={node.dev}")
    if result.returncode != 0:
        raise RuntimeError(f"release failed: {result.stderr.strip()}")


def cold(lan: Lan, vip: str, args: str, reps: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(reps):
        out.append(first_reply_after_acquire(lan, lan.a, vip, args, 20))
        release(lan, lan.a, vip)
    return out


def takeover(lan: Lan, vip: str, args: str, reps: int, timeout: float = 20) -> list[tuple[float, float]]:
    out = []
    for _ in range(reps):
        held = lan.agent(lan.a, "acquire", f"{vip} dev={lan.a.dev} dad=no arp_count=1")
        if held.returncode != 0 or not lan.ping(vip.split("/")[0]) or lan.neighbour(vip.split("/")[0]) != lan.a.mac:
            raise RuntimeError("setup: the client does not reach the address at node A")
        release(lan, lan.a, vip)
        out.append(first_reply_after_acquire(lan, lan.b, vip, args, timeout))
        release(lan, lan.b, vip)
    return out


def report(name: str, samples: list[tuple[float, float]]) -> None:
    replies = [s[0] * 1000 for s in samples]
    acquires = [s[1] * 1000 for s in samples]
    print(
        f"{name:<46} first reply median {statistics.median(replies):7.0f} ms "
        f"(min {min(replies):5.0f}, max {max(replies):5.0f}); acquire exits after "
        f"{statistics.median(acquires):5.0f} ms  [n={len(samples)}]",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--without-announce", action="store_true")
    parser.add_argument("--pinger", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=20, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.pinger:
        return pinger(opts.pinger, opts.timeout)
    if os.geteuid() != 0:
        print("bench_vip: needs root (network namespaces)", file=sys.stderr)
        return 2
    print(f"@vip acquire -> client's first echo reply; {os.cpu_count()} CPUs, reps={opts.reps}")
    lan = Lan().open()
    try:
        overhead = []
        for _ in range(opts.reps):
            start = time.monotonic()
            lan.agent(lan.a, "release", f"192.0.2.99/24 dev={lan.a.dev}")
            overhead.append(time.monotonic() - start)
        name = "agent process, release of an absent address"
        print(f"{name:<46} median {statistics.median(overhead) * 1000:7.0f} ms", flush=True)
        report("IPv4 cold acquire (defaults)", cold(lan, "192.0.2.10/24", "", opts.reps))
        report("IPv4 takeover A->B (defaults: 5 GARP / 0.2 s)", takeover(lan, "192.0.2.10/24", "", opts.reps))
        report("IPv6 takeover A->B (defaults: kernel DAD)", takeover(lan, "2001:db8::10/64", "", opts.reps))
        report("IPv6 takeover A->B (dad=no)", takeover(lan, "2001:db8::10/64", "dad=no", opts.reps))
        if opts.without_announce:
            reps = min(opts.reps, 3)
            silent4 = takeover(lan, "192.0.2.10/24", "arp_count=0", reps, 90)
            report("IPv4 takeover A->B, arp_count=0", silent4)
            silent6 = takeover(lan, "2001:db8::10/64", "dad=no arp_count=0", reps, 90)
            report("IPv6 takeover A->B, dad=no arp_count=0", silent6)
    finally:
        lan.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
