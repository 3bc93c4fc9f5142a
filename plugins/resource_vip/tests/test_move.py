"""A VIP acquired on one node answers the client there; moved to the other node, the client follows at once
because the new holder announces itself (gratuitous ARP, unsolicited NA) instead of waiting for the client's
neighbour entry to time out."""

from __future__ import annotations

import pytest
from omha_testing.lan import Lan, Node, wait_for

#: few, closely spaced announcements keep the tests quick; the defaults are 5 every 0.2 s
FAST = "arp_count=3 arp_interval=0.05"
CASES = [
    pytest.param("192.0.2.10", "/24", id="ipv4"),
    pytest.param("2001:db8::10", "/64", id="ipv6"),
]


def _acquire(lan: Lan, node: Node, args: str) -> None:
    result = lan.agent(node, "acquire", args)
    assert result.returncode == 0, result.stderr


@pytest.mark.root
@pytest.mark.parametrize(("vip", "prefix"), CASES)
def test_client_reaches_vip_at_a_then_at_b_after_the_move(lan: Lan, vip: str, prefix: str) -> None:
    _acquire(lan, lan.a, f"{vip}{prefix} dev={lan.a.dev} {FAST}")
    assert f"{vip}{prefix}" in lan.addresses(lan.a.ns, lan.a.dev)
    assert lan.ping(vip), "client cannot reach the VIP held by node A"
    assert lan.neighbour(vip) == lan.a.mac

    release = lan.agent(lan.a, "release", f"{vip}{prefix} dev={lan.a.dev}")
    assert release.returncode == 0, release.stderr
    assert f"{vip}{prefix}" not in lan.addresses(lan.a.ns, lan.a.dev)

    _acquire(lan, lan.b, f"{vip}{prefix} dev={lan.b.dev} {FAST}")
    # the announcement rewrote the client's entry: no ARP/ND timeout (tens of seconds) was waited for
    wait_for("the client's neighbour entry to show node B", lambda: lan.neighbour(vip) == lan.b.mac, timeout=5)
    assert lan.ping(vip), "client cannot reach the VIP after it moved to node B"
    assert lan.neighbour(vip) == lan.b.mac


@pytest.mark.root
@pytest.mark.parametrize(("vip", "prefix"), CASES)
def test_without_announcement_the_client_keeps_the_old_mac(lan: Lan, vip: str, prefix: str) -> None:
    """The control for the test above: with arp_count=0 nothing tells the client, which still points at A."""
    _acquire(lan, lan.a, f"{vip}{prefix} dev={lan.a.dev} dad=no {FAST}")
    assert lan.ping(vip)
    assert lan.agent(lan.a, "release", f"{vip}{prefix} dev={lan.a.dev}").returncode == 0
    _acquire(lan, lan.b, f"{vip}{prefix} dev={lan.b.dev} dad=no arp_count=0")
    assert lan.neighbour(vip) == lan.a.mac


@pytest.mark.root
def test_interface_found_by_subnet_and_label_applied(lan: Lan) -> None:
    """Without dev= the agent uses the interface whose subnet holds the VIP; label=web becomes veth-a:web."""
    _acquire(lan, lan.a, f"192.0.2.11/24 label=web {FAST}")
    assert lan.labels(lan.a.ns, lan.a.dev).get("192.0.2.11") == "veth-a:web"
    assert lan.ping("192.0.2.11")
    assert lan.agent(lan.a, "release", "192.0.2.11/24").returncode == 0
    assert "192.0.2.11/24" not in lan.addresses(lan.a.ns, lan.a.dev)


@pytest.mark.root
def test_prefix_taken_from_the_subnet_when_omitted(lan: Lan) -> None:
    _acquire(lan, lan.a, f"2001:db8::12 dad=no {FAST}")
    assert "2001:db8::12/64" in lan.addresses(lan.a.ns, lan.a.dev)
    assert lan.ping("2001:db8::12")


@pytest.mark.root
def test_acquire_is_idempotent(lan: Lan) -> None:
    args = f"192.0.2.13/24 dev={lan.a.dev} {FAST}"
    _acquire(lan, lan.a, args)
    _acquire(lan, lan.a, args)
    assert lan.addresses(lan.a.ns, lan.a.dev).count("192.0.2.13/24") == 1
