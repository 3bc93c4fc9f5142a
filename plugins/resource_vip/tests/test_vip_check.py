"""check (the ``test`` mode fitness test) fails when this node cannot host the address: interface missing,
down or without carrier, or the address already answering from another host (ARP probe / IPv6 DAD)."""

from __future__ import annotations

import pytest
from omha_testing.lan import Lan, ip

CASES = [pytest.param("192.0.2.60/24", "ARP probe", id="ipv4"), pytest.param("2001:db8::60/64", "", id="ipv6")]


@pytest.mark.root
@pytest.mark.parametrize(("vip", "method"), CASES)
def test_check_fails_when_another_host_answers_for_the_address(lan: Lan, vip: str, method: str) -> None:
    assert lan.agent(lan.b, "check", f"{vip} dev={lan.b.dev}").returncode == 0, "free address must pass"
    held = lan.agent(lan.a, "acquire", f"{vip} dev={lan.a.dev} dad=no arp_count=1")
    assert held.returncode == 0, held.stderr

    result = lan.agent(lan.b, "check", f"{vip} dev={lan.b.dev} probe_timeout=0.5")
    assert result.returncode == 1
    assert "already in use on the network of veth-b" in result.stderr
    assert f"answered by {lan.a.mac}" in result.stderr
    assert method in result.stderr
    # the node holding it is fit: its own answers do not count
    assert lan.agent(lan.a, "check", f"{vip} dev={lan.a.dev} probe_timeout=0.3").returncode == 0


@pytest.mark.root
def test_check_fails_when_the_interface_is_missing(lan: Lan) -> None:
    result = lan.agent(lan.b, "check", "192.0.2.60/24 dev=eth9")
    assert result.returncode == 1
    assert "interface eth9 does not exist on this node (it has: lo, veth-b)" in result.stderr


@pytest.mark.root
def test_check_fails_when_the_interface_is_down_or_has_no_carrier(lan: Lan) -> None:
    ip("-n", lan.client, "link", "set", "port-b", "down")
    result = lan.agent(lan.b, "check", f"192.0.2.60/24 dev={lan.b.dev}")
    assert result.returncode == 1
    assert "veth-b has no carrier" in result.stderr

    ip("-n", lan.b.ns, "link", "set", lan.b.dev, "down")
    result = lan.agent(lan.b, "check", f"192.0.2.60/24 dev={lan.b.dev}")
    assert result.returncode == 1
    assert "interface veth-b is down" in result.stderr


@pytest.mark.root
def test_check_without_dev_needs_a_matching_subnet(lan: Lan) -> None:
    result = lan.agent(lan.b, "check", "198.51.100.60/24")
    assert result.returncode == 1
    assert "no interface here has an address in a subnet containing 198.51.100.60; name one with dev=" in (
        result.stderr
    )


@pytest.mark.root
def test_ipv4_acquire_with_dad_refuses_an_address_in_use(lan: Lan) -> None:
    assert lan.agent(lan.a, "acquire", f"192.0.2.61/24 dev={lan.a.dev} arp_count=1").returncode == 0
    result = lan.agent(lan.b, "acquire", f"192.0.2.61/24 dev={lan.b.dev} dad=yes probe_timeout=0.5")
    assert result.returncode == 1
    assert f"answered by {lan.a.mac} (ARP probe)" in result.stderr
    assert "192.0.2.61/24" not in lan.addresses(lan.b.ns, lan.b.dev)


@pytest.mark.root
def test_ipv6_acquire_fails_and_cleans_up_when_kernel_dad_finds_a_duplicate(lan: Lan) -> None:
    assert lan.agent(lan.a, "acquire", f"2001:db8::61/64 dev={lan.a.dev} dad=no arp_count=1").returncode == 0
    result = lan.agent(lan.b, "acquire", f"2001:db8::61/64 dev={lan.b.dev}")
    assert result.returncode == 1
    assert "another host answered the kernel's duplicate address detection" in result.stderr
    assert "2001:db8::61/64" not in lan.addresses(lan.b.ns, lan.b.dev)
    assert lan.neighbour("2001:db8::61") in (None, lan.a.mac)
