"""The campaign's network for ``@vip`` groups: one network namespace per node on one bridge (``--vip``).

Each node's daemon runs inside its namespace (``ip netns exec``), with ``eth0`` holding the node's own address
(192.0.2.11, .12, ...); the group ``gv`` holds :data:`VIP` there through ``@vip``. Powering a node off (the fence
device) flushes its addresses and sets its link down, as losing power does; powering it on brings the link up
with its own address only. :class:`Sampler` records which nodes hold the VIP, for the checker.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

VIP = "192.0.2.100"
PREFIX = 24


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


class Lan:
    def __init__(self, logdir: Path, nodes: list[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.logdir = logdir
        self.bridge_ns = f"ochaos-{tag}-br"
        self.ns = {n: f"ochaos-{tag}-{n}" for n in nodes}
        self.own = {n: f"192.0.2.{11 + i}" for i, n in enumerate(nodes)}
        self.made: list[str] = []

    def open(self) -> None:
        ip("netns", "add", self.bridge_ns)
        self.made.append(self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for node, ns in self.ns.items():
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", self.bridge_ns, "link", "add", f"p{node}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.bridge_ns, "link", "set", f"p{node}", "master", "br0", "up")
            # the fence device finds the namespace here ("power off" takes the node off the network)
            (self.logdir / f"netns.{node}").write_text(ns)
            self.power_on(node)

    def power_on(self, node: str) -> None:
        """The node boots: its link up with its own address (and nothing else it held before)."""
        ns = self.ns[node]
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "addr", "replace", f"{self.own[node]}/{PREFIX}", "dev", "eth0")

    def holders(self) -> list[str]:
        """The nodes whose eth0 holds the VIP now."""
        out = []
        for node, ns in self.ns.items():
            text = ip("-n", ns, "-4", "-o", "addr", "show", "dev", "eth0", check=False).stdout
            if f" {VIP}/" in text:
                out.append(node)
        return out

    def close(self) -> None:
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)
        self.made.clear()


def power_off_network(ns: str) -> None:
    """What losing power does to a node's network: no address, no link (run by the fence device)."""
    ip("-n", ns, "addr", "flush", "dev", "eth0", check=False)
    ip("-n", ns, "link", "set", "eth0", "down", check=False)


class Sampler(threading.Thread):
    """Every ``period`` seconds, which nodes hold the VIP; a ``vip`` line in the harness log at every change."""

    def __init__(self, lan: Lan, log: Path, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.lan, self.log, self.period = lan, log, period
        self.stopping = threading.Event()

    def run(self) -> None:
        last: list[str] | None = None
        while not self.stopping.is_set():
            begun = time.monotonic()
            holders = self.lan.holders()
            if holders != last:
                with open(self.log, "a") as fh:
                    fh.write(json.dumps({"ev": "vip", "holders": holders, "begun": begun, "mono": time.monotonic(),
                                         "wall": time.time()}) + "\n")
                last = holders
            self.stopping.wait(self.period)
