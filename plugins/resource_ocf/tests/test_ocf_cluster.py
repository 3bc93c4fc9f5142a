"""A group of stock ClusterLabs agents (``IPaddr2`` + ``Filesystem``) fails over between two real ``omha``
daemons, and Pacemaker's sample alert agent records what happened.

Daemon ``n1`` runs in node A's network namespace and ``n2`` in node B's (``ip netns exec``, which also gives each
daemon a mount namespace of its own, so a filesystem one node mounts is invisible to the other). Both see one
loop device, as two servers see a SAN LUN. The group::

    web:fit:test:test:@ocf heartbeat:IPaddr2 ip=VIP cidr_netmask=24            validate-all: fitness
    web:fs:run:wait:@ocf heartbeat:Filesystem device=LOOP directory=MNT fstype=ext4     mounted before what follows
    web:ip:run:respawn:@ocf heartbeat:IPaddr2 ip=VIP cidr_netmask=24
    web:w:run:respawn:<a writer appending the node's name to MNT/journal>

The holder's daemon is killed (SIGKILL); the survivor fences it (a ``command`` device that kills the node's
processes and takes its link down, as pulling a plug does), then starts the group. The client namespace's
neighbour entry for the address switches to the new node's MAC (IPaddr2's gratuitous ARP), and it pings the
address there; the journal written on the first node is on the filesystem the second one mounted.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from omha_testing.cluster import Cluster
from omha_testing.disks import Disk
from omha_testing.lan import Lan, link_up, plug_puller, wait_for
from omha_testing.netns import as_node

from omha_core.localcluster import power_off

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.usefixtures("heartbeat_agents")]

ALERT_SAMPLE = Path("/usr/share/pacemaker/alerts/alert_file.sh.sample")


def in_node(c: Cluster, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the namespaces of ``node``'s daemon (network and mount)."""
    pid = str(c.procs[node].pid)
    return subprocess.run(["nsenter", "-t", pid, "-m", "-n", "--", *argv], capture_output=True, text=True, timeout=30)


def mounted(c: Cluster, node: str, mnt: Path) -> bool:
    return in_node(c, node, "findmnt", "-n", str(mnt)).returncode == 0


def test_ipaddr2_and_filesystem_fail_over_and_alerts_record_it(lan: Lan, disk: Disk, tmp_path: Path) -> None:
    if not ALERT_SAMPLE.exists():
        pytest.skip(f"needs {ALERT_SAMPLE} (pacemaker-common; installed by 'make test' as root)")
    alert_agent = tmp_path / "alert_file.sh"
    shutil.copy(ALERT_SAMPLE, alert_agent)
    alert_agent.chmod(0o755)
    alerts_log = tmp_path / "alerts.log"
    vip = f"192.0.2.{random.randint(100, 250)}"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    journal = mnt / "journal"
    ip = f"@ocf heartbeat:IPaddr2 ip={vip} cidr_netmask=24"
    cltab = (
        f"web:fit:test:test:{ip}\n"
        f"web:fs:run:wait:@ocf heartbeat:Filesystem device={disk.device} directory={mnt} fstype=ext4\n"
        f"web:ip:run:respawn:{ip} op.monitor.interval=1s\n"
        f'web:w:run:respawn:while :; do echo "$OMHA_NODE" >> {journal}; sleep 0.1; done\n'
    )
    nodes = {"n1": lan.a, "n2": lan.b}
    c = Cluster(
        tmp_path,
        list(nodes),
        cltab=cltab,
        hactl="web run\n",
        config={"quorum": {"policy": "ignore"}, "fencing": {"action": "off"}},
        devices=[plug_puller(tmp_path, nodes)],
        wrap={name: as_node(node.ns) for name, node in nodes.items()},
    )
    for name in c.names:
        path = c.config_path(name)
        path.write_text(
            path.read_text() + f'[[alerts]]\npath = "{alert_agent}"\nrecipient = "{alerts_log}"\ntimeout = 10\n'
        )
    try:
        c.start()
        holder = c.wait_running("web", 60)
        other = next(n for n in nodes if n != holder)
        wait_for(
            f"the address on {holder}", lambda: f"{vip}/24" in lan.addresses(nodes[holder].ns, nodes[holder].dev), 20
        )
        wait_for(f"the filesystem on {holder}", lambda: mounted(c, holder, mnt), 20)
        assert not mounted(c, other, mnt)
        assert f"{vip}/24" not in lan.addresses(nodes[other].ns, nodes[other].dev)
        assert lan.ping(vip) and lan.neighbour(vip) == nodes[holder].mac
        wait_for("the writer", lambda: holder in in_node(c, holder, "cat", str(journal)).stdout, 20)

        c.kill(holder, signal.SIGKILL)
        assert c.wait_running("web", 60, exclude=(holder,)) == other
        record = c.fence_record(holder)
        assert record["ok"] and record["by"] == other
        assert not link_up(nodes[holder])
        wait_for(f"the address on {other}", lambda: f"{vip}/24" in lan.addresses(nodes[other].ns, nodes[other].dev), 20)
        # the client's entry changes before it sends anything: only the new holder's announcement can do that
        wait_for("the client's neighbour entry to move", lambda: lan.neighbour(vip) == nodes[other].mac, 20)
        assert lan.ping(vip)
        wait_for(f"the filesystem on {other}", lambda: mounted(c, other, mnt), 20)
        wait_for("the writer on the new node", lambda: other in in_node(c, other, "cat", str(journal)).stdout, 20)
        written = in_node(c, other, "cat", str(journal)).stdout.split()
        assert written[0] == holder and written[-1] == other  # the same filesystem, carried over

        def alerted() -> bool:
            text = alerts_log.read_text() if alerts_log.exists() else ""
            return all(
                line in text
                for line in (
                    f"Node '{holder}' is now 'lost'",
                    f"Fencing Operation off of {holder} by {other} for omha@{other}: OK",
                    f"Resource operation 'start' for 'web' on '{other}': ok",
                )
            )

        wait_for("the alerts of the failover", alerted, 20)
        assert f"Resource operation 'start' for 'web' on '{holder}': ok" in alerts_log.read_text()
    finally:
        c.stop()
        for name in c.names:
            power_off(c.tmp, name)
