"""ClusterLabs' own agents driven by ``@ocf`` on real parts: ``IPaddr2`` in a node namespace of a throw-away
Ethernet segment (a client pings the address), ``Filesystem`` on a loop device inside a private mount namespace."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from ocf_support import run_agent
from omha_testing.disks import Disk, Node
from omha_testing.lan import Lan

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("heartbeat_agents")]


def test_ipaddr2_in_a_namespace(lan: Lan) -> None:
    vip = f"192.0.2.{random.randint(100, 250)}"  # other tests may run IPaddr2 on another segment at the same time
    args = f"heartbeat:IPaddr2 ip={vip} cidr_netmask=24"
    wrap = ("ip", "netns", "exec", lan.a.ns)
    assert run_agent("ocf", "check", args, wrap=wrap).returncode == 0
    done = run_agent("ocf", "acquire", args, wrap=wrap)
    assert done.returncode == 0, done.stderr
    assert f"{vip}/24" in lan.addresses(lan.a.ns, lan.a.dev)  # IPaddr2 found the interface by the subnet
    assert lan.ping(vip)
    assert lan.neighbour(vip) == lan.a.mac
    done = run_agent("ocf", "release", args, wrap=wrap)
    assert done.returncode == 0, done.stderr
    assert f"{vip}/24" not in lan.addresses(lan.a.ns, lan.a.dev)
    assert not lan.ping(vip, wait=1)


def test_filesystem_on_a_loop_device(disk: Disk, nodes: Callable[[str], Node], tmp_path: Path) -> None:
    node = nodes("n1")
    mnt = node.root / "mnt"
    mnt.mkdir()
    args = f"heartbeat:Filesystem device={disk.device} directory={mnt} fstype=ext4"
    wrap = tuple(node.cmd())
    assert run_agent("ocf", "check", args, wrap=wrap).returncode == 0
    done = run_agent("ocf", "acquire", args, wrap=wrap)
    assert done.returncode == 0, done.stderr
    entry = node.mounted(mnt)
    assert entry is not None and entry.fstype == "ext4"
    node.sh(f"echo hello > {mnt}/file")
    done = run_agent("ocf", "release", args, wrap=wrap)
    assert done.returncode == 0, done.stderr
    assert node.mounted(mnt) is None
    # the device mounted with a wrong type is refused by the agent, and nothing stays mounted
    bad = f"heartbeat:Filesystem device={disk.device} directory={mnt} fstype=xfs"
    assert run_agent("ocf", "acquire", bad, wrap=wrap).returncode == 1
    assert node.mounted(mnt) is None
