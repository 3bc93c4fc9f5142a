"""Under ``respawn`` the agent watches its address: one removed behind its back is re-added, and a stop
signal releases it; an interface that disappears makes the agent exit for the init to restart it."""

from __future__ import annotations

import signal

import pytest
from omha_testing.lan import Lan, ip, wait_for

EXIT_LOST = 3


@pytest.mark.root
@pytest.mark.parametrize(("vip", "extra"), [("192.0.2.50/24", ""), ("2001:db8::50/64", "dad=no")], ids=["ipv4", "ipv6"])
def test_respawn_re_adds_a_removed_address_and_releases_on_sigterm(lan: Lan, vip: str, extra: str) -> None:
    ns, dev = lan.a.ns, lan.a.dev
    address = vip.split("/")[0]
    proc = lan.spawn_agent(lan.a, "respawn", f"{vip} dev={dev} monitor_interval=0.1 arp_count=1 {extra}")
    wait_for("the agent to add the VIP", lambda: vip in lan.addresses(ns, dev))

    ip("-n", ns, "addr", "del", vip, "dev", dev)
    assert vip not in lan.addresses(ns, dev)
    wait_for("the monitor to re-add the VIP", lambda: vip in lan.addresses(ns, dev))
    assert proc.poll() is None, "the agent exited instead of re-adding the address"
    assert lan.ping(address)
    assert lan.neighbour(address) == lan.a.mac

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "vanished from veth-a; re-adding it" in stderr
    assert vip not in lan.addresses(ns, dev)


@pytest.mark.root
def test_respawn_exits_lost_when_the_interface_disappears(lan: Lan) -> None:
    ns, dev = lan.a.ns, lan.a.dev
    proc = lan.spawn_agent(lan.a, "respawn", f"192.0.2.51/24 dev={dev} monitor_interval=0.1 arp_count=1")
    early = lan.wait_acquired(proc)
    assert "192.0.2.51/24" in lan.addresses(ns, dev)

    ip("-n", ns, "link", "del", dev)
    _, rest = proc.communicate(timeout=20)
    stderr = early + rest
    assert proc.returncode == EXIT_LOST, stderr
    assert "interface veth-a of 192.0.2.51/24 is gone" in stderr


@pytest.mark.root
@pytest.mark.parametrize(("vip", "extra"), [("192.0.2.52/24", ""), ("2001:db8::52/64", "dad=no")], ids=["ipv4", "ipv6"])
def test_respawn_without_dev_exits_lost_when_the_holding_interface_goes_down(lan: Lan, vip: str, extra: str) -> None:
    """No ``dev=``: the monitor watches the interface the address was found on. Set down, it loses the VIP's
    traffic (IPv4 keeps the address configured, IPv6 drops it): either way the entry is lost, exit 3, and
    stderr names the interface."""
    ns, dev = lan.a.ns, lan.a.dev
    proc = lan.spawn_agent(lan.a, "respawn", f"{vip} monitor_interval=0.1 arp_count=1 {extra}")
    early = lan.wait_acquired(proc)
    assert vip in lan.addresses(ns, dev)

    ip("-n", ns, "link", "set", dev, "down")
    _, rest = proc.communicate(timeout=20)
    stderr = early + rest
    assert proc.returncode == EXIT_LOST, stderr
    assert f"interface {dev} of {vip} is down" in stderr
    assert "resource lost" in stderr
