"""A group holding a VIP fails over between two real ``omha`` daemons, each inside its own node namespace.

Daemon ``n1`` runs in node A's network namespace and ``n2`` in node B's (``ip netns exec``), on the segment of
:mod:`omha_testing.lan`; the client namespace talks to the VIP. The group ``web`` is::

    web:ipt:test:test:@vip 192.0.2.10/24 probe_timeout=0.5     fitness: nobody else answers for the address
    web:ip:run:respawn:@vip 192.0.2.10/24                      hold it, announce it, monitor it
    web:srv:run:respawn:exec python whoami.py                  a TCP service on port 8080 naming its node

No ``dev=``: the nodes' interfaces are named differently (veth-a, veth-b), and the agent takes the interface
whose subnet holds the VIP, so the one cltab serves both nodes.

What happens to the address on the node that fails, found by these tests:

- the daemon is killed (SIGKILL): its guard sends SIGTERM to the respawn agent, which releases the address, so
  nothing is left behind and the move is safe without fencing;
- the node freezes (SIGSTOP on the daemon: a hung node): its agent keeps running and its kernel keeps answering
  for the address. Killing the node's processes is not enough to rely on either: a SIGKILLed agent cannot
  release (the dead daemon's guard then runs a release, but on a real hung node that may never happen). Only
  fencing that takes the node off the network, as a real power-off does, makes the move safe; the fence
  device here kills the node's processes and sets its link down. (With a fence device that only kills
  processes, the survivor's ``test``-mode check hears the frozen node answer for the address and fails, so the
  group stays down rather than running with a duplicate address.)

In every case the client's neighbour entry switches to the new node's MAC before the client sends anything to
the address again: only the new holder's gratuitous ARP can have changed it, so no ARP timeout was waited for.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omha_testing.cluster import Cluster
from omha_testing.lan import Lan, Node, link_up, plug_puller, wait_for
from omha_testing.netns import as_node

from omha_core.localcluster import power_off

pytestmark = [pytest.mark.root, pytest.mark.slow]

VIP = "192.0.2.10"
VIP_CIDR = f"{VIP}/24"
PORT = 8080

WHOAMI = f"""\
import os, socket
with socket.create_server(("0.0.0.0", {PORT})) as server:
    while True:
        conn, _ = server.accept()
        with conn:
            conn.sendall(os.environ["OMHA_NODE"].encode())
"""

MakeCluster = Callable[..., tuple[Cluster, dict[str, Node]]]


@pytest.fixture
def vip_cluster(lan: Lan, tmp_path: Path) -> Iterator[MakeCluster]:
    """Build (once) the two-daemon cluster on ``lan``; every daemon and its processes are gone afterwards."""
    made: list[Cluster] = []

    def make(fenced: bool = False) -> tuple[Cluster, dict[str, Node]]:
        nodes = {"n1": lan.a, "n2": lan.b}
        script = tmp_path / "whoami.py"
        script.write_text(WHOAMI)
        cltab = (
            f"web:ipt:test:test:@vip {VIP_CIDR} probe_timeout=0.5\n"
            f"web:ip:run:respawn:@vip {VIP_CIDR}\n"
            f"web:srv:run:respawn:exec {sys.executable} {script}\n"
        )
        config: dict[str, dict[str, object]] = {"quorum": {"policy": "ignore"}}
        if fenced:
            config["fencing"] = {"action": "off"}
        c = Cluster(
            tmp_path,
            list(nodes),
            cltab=cltab,
            hactl="web run\n",
            config=config,
            devices=[plug_puller(tmp_path, nodes)] if fenced else [],
            wrap={name: as_node(node.ns) for name, node in nodes.items()},
        )
        made.append(c)
        return c, nodes

    try:
        yield make
    finally:
        for c in made:
            for proc in c.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
            c.stop()
            for name in c.names:  # anything a daemon left behind inside a namespace would outlive `ip netns del`
                power_off(c.tmp, name)


def whoami(lan: Lan) -> str | None:
    """Connect from the client to the VIP's port 8080: the name of the node that answered, or None."""
    code = f"import socket; print(socket.create_connection(({VIP!r}, {PORT}), timeout=2).recv(64).decode())"
    cmd = ["ip", "netns", "exec", lan.client, sys.executable, "-c", code]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else None


def holds(lan: Lan, node: Node) -> bool:
    """True while the VIP is configured on ``node``'s interface."""
    return VIP_CIDR in lan.addresses(node.ns, node.dev)


def assert_client_reaches(lan: Lan, name: str, node: Node, moved: bool = True) -> None:
    """The client's pings to the VIP and its connections to the service are answered by ``node``.

    After a move (``moved``), first wait for the client's neighbour entry to show ``node``'s MAC, before the client
    sends anything: only the new holder's announcement can change it then. The first time, the client has no
    entry yet (an announcement updates entries, it does not create them), so it pings first.
    """
    if moved:
        wait_for(f"the client's neighbour entry to show {name}", lambda: lan.neighbour(VIP) == node.mac, 10)
    assert lan.ping(VIP), f"the client cannot ping the VIP at {name}"
    wait_for(f"the service on {name} to answer at the VIP", lambda: whoami(lan) == name, 10)
    assert lan.neighbour(VIP) == node.mac


def start(c: Cluster, lan: Lan, nodes: dict[str, Node]) -> tuple[str, str]:
    """Start both daemons; return (holder, other) once web runs and the client reaches it at the holder."""
    c.start()
    holder = c.wait_running("web", 30)
    other = next(n for n in nodes if n != holder)
    wait_for(f"the VIP on {holder}", lambda: holds(lan, nodes[holder]), 10)
    assert not holds(lan, nodes[other])
    assert_client_reaches(lan, holder, nodes[holder], moved=False)
    return holder, other


def test_vip_moves_when_the_holders_daemon_is_killed(lan: Lan, vip_cluster: MakeCluster) -> None:
    c, nodes = vip_cluster()
    holder, other = start(c, lan, nodes)
    c.kill(holder, signal.SIGKILL)
    # the guard stops the respawn agent with SIGTERM, and the agent releases the address on its way out
    wait_for(f"the dead {holder} to release the VIP", lambda: not holds(lan, nodes[holder]), 10)
    assert c.wait_running("web", 30, exclude=(holder,)) == other
    wait_for(f"the VIP on {other}", lambda: holds(lan, nodes[other]), 10)
    assert_client_reaches(lan, other, nodes[other])
    assert not holds(lan, nodes[holder])


def test_vip_moves_on_graceful_shutdown(lan: Lan, vip_cluster: MakeCluster) -> None:
    c, nodes = vip_cluster()
    holder, other = start(c, lan, nodes)
    c.omha(holder, "shutdown", "--wait")
    assert not holds(lan, nodes[holder]), "the VIP outlived the daemon that held it"
    assert c.procs[holder].wait(10) == 0
    assert c.wait_running("web", 30, exclude=(holder,)) == other
    assert_client_reaches(lan, other, nodes[other])


def test_frozen_holder_is_fenced_off_the_network_before_the_vip_moves(lan: Lan, vip_cluster: MakeCluster) -> None:
    c, nodes = vip_cluster(fenced=True)
    holder, other = start(c, lan, nodes)
    c.kill(holder, signal.SIGSTOP)
    # hung, not dead: the address stays and the node's kernel still answers for it
    assert holds(lan, nodes[holder])
    assert lan.ping(VIP) and lan.neighbour(VIP) == nodes[holder].mac
    assert c.wait_running("web", 30, exclude=(holder,)) == other
    record = c.fence_record(holder)
    assert record["ok"] and record["device"] == "plug" and record["by"] == other
    assert c.procs[holder].wait(10) == -signal.SIGKILL
    # the node is off the segment, whatever became of the address (the dead daemon's guard may have released it)
    assert not link_up(nodes[holder])
    assert_client_reaches(lan, other, nodes[other])
