"""Per-node network namespaces for partition tests: each node's daemon runs in a namespace of its own, linked to
the host by a veth pair, and a partition is that link going dark.

::

    host (root namespace)                            ns cts-<tag>-n1
      ct<tag>1  198.51.100.(b+1)/30  <-- veth -->      cp<tag>1  198.51.100.(b+2)/30

Each node gets its own /30 of 198.51.100.0/24 (a documentation prefix; the block is drawn at random among those
not configured on this host, since other tests may run at the same time). A service that should be reachable from
the nodes (etcd) listens on the host ends. :meth:`NodeNets.cut` sets the host end of a node's link down: its
packets are dropped silently, so its connections time out as behind a pulled cable (not "connection refused");
:meth:`NodeNets.heal` sets it up again. :meth:`NodeNets.close` deletes the namespaces, and the veth pairs with
them.
"""

from __future__ import annotations

import random
import subprocess
import uuid
from dataclasses import dataclass


def ip(*args: str) -> str:
    """Run ``ip ARGS``; raise with its error output when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class NodeNet:
    """One node's namespace, its link's host end, and the addresses of both ends."""

    ns: str
    host_dev: str
    host_ip: str
    node_ip: str


class NodeNets:
    """A namespace per node (see the module docstring); use as a context manager or call :meth:`close`."""

    def __init__(self, nodes: list[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        used = ip("-4", "-o", "addr", "show")
        size = 4 * len(nodes)
        free = [
            b for b in range(0, 257 - size, size) if not any(f"198.51.100.{a}/" in used for a in range(b, b + size))
        ]
        if not free:
            raise RuntimeError("no free block of 198.51.100.0/24 on this host")
        base = random.choice(free)
        self.nets: dict[str, NodeNet] = {}
        try:
            for i, node in enumerate(nodes):
                a = base + 4 * i
                net = NodeNet(f"cts-{tag}-{node}", f"ct{tag}{i}", f"198.51.100.{a + 1}", f"198.51.100.{a + 2}")
                self.nets[node] = net
                peer = f"cp{tag}{i}"
                ip("netns", "add", net.ns)
                ip("link", "add", net.host_dev, "type", "veth", "peer", "name", peer, "netns", net.ns)
                ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_dev)
                ip("link", "set", net.host_dev, "up")
                ip("-n", net.ns, "addr", "add", f"{net.node_ip}/30", "dev", peer)
                ip("-n", net.ns, "link", "set", peer, "up")
                ip("-n", net.ns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def wrap(self, node: str) -> list[str]:
        """The command prefix that runs a program in ``node``'s namespace."""
        return ["ip", "netns", "exec", self.nets[node].ns]

    def cut(self, node: str) -> None:
        """``node`` loses its link: nothing gets through in either direction."""
        ip("link", "set", self.nets[node].host_dev, "down")

    def heal(self, node: str) -> None:
        ip("link", "set", self.nets[node].host_dev, "up")

    def close(self) -> None:
        for net in self.nets.values():
            subprocess.run(["ip", "netns", "del", net.ns], capture_output=True, timeout=30)
            subprocess.run(["ip", "link", "del", net.host_dev], capture_output=True, timeout=30)

    def __enter__(self) -> NodeNets:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
