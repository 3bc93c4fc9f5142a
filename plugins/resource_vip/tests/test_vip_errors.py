"""Clear errors, run exactly as the daemon runs the agent: bad address or prefix (exit 2, before touching
anything), unknown interface, and permission denied for a process without CAP_NET_ADMIN / CAP_NET_RAW."""

from __future__ import annotations

import pytest
from omha_testing.lan import Lan

EXIT_FAILED, EXIT_USAGE = 1, 2


@pytest.mark.root
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("192.0.2.300/24", "bad address '192.0.2.300/24': expected an IPv4 or IPv6 address"),
        ("192.0.2.10/33", "prefix length 33 is out of range for IPv4 (1-32)"),
        ("2001:db8::10/129", "prefix length 129 is out of range for IPv6 (1-128)"),
        ("192.0.2.10/x", "bad prefix in '192.0.2.10/x'"),
        ("192.0.2.0/24", "192.0.2.0 is the network address of 192.0.2.0/24"),
        ("192.0.2.10/24 speed=fast", "unknown parameter speed="),
        ("192.0.2.10/24 arp_count=-1", "arp_count='-1': expected a whole number, 0 or more"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(lan: Lan, args: str, message: str) -> None:
    result = lan.agent(lan.a, "acquire", args)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr


@pytest.mark.root
def test_unknown_interface(lan: Lan) -> None:
    result = lan.agent(lan.a, "acquire", "192.0.2.10/24 dev=veth-x")
    assert result.returncode == EXIT_FAILED
    assert "interface veth-x does not exist on this node (it has: lo, veth-a)" in result.stderr


@pytest.mark.root
def test_permission_denied_without_cap_net_admin(lan: Lan) -> None:
    ns, dev = lan.a.ns, lan.a.dev
    result = lan.agent(lan.a, "acquire", f"192.0.2.70/24 dev={dev}", nobody=True)
    assert result.returncode == EXIT_FAILED
    assert "permission denied adding 192.0.2.70/24 to veth-a: needs root or CAP_NET_ADMIN" in result.stderr
    assert "192.0.2.70/24" not in lan.addresses(ns, dev)

    assert lan.agent(lan.a, "acquire", f"192.0.2.70/24 dev={dev} arp_count=1").returncode == 0
    result = lan.agent(lan.a, "release", f"192.0.2.70/24 dev={dev}", nobody=True)
    assert result.returncode == EXIT_FAILED
    assert "permission denied removing 192.0.2.70/24 from veth-a" in result.stderr
    assert "192.0.2.70/24" in lan.addresses(ns, dev)


@pytest.mark.root
def test_permission_denied_for_the_probe_without_cap_net_raw(lan: Lan) -> None:
    result = lan.agent(lan.a, "check", f"192.0.2.71/24 dev={lan.a.dev}", nobody=True)
    assert result.returncode == EXIT_FAILED
    assert "permission denied: the ARP probe needs root or CAP_NET_RAW" in result.stderr
