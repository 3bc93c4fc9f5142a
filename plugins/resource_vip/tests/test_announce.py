"""What the agent puts on the wire, counted from the client's namespace: ``arp_count`` gratuitous ARPs (each a
request and a reply) or unsolicited neighbour advertisements, the first at once and the rest ``arp_interval``
apart, and the same again when the monitor re-adds a vanished address.

Frames are counted, never timed: :meth:`Capture.sync` pings from the node after the action, so once that echo
request is read every announcement sent before it has been read too, and the count is final.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
from omha_testing.capture import Capture
from omha_testing.lan import Lan, Node, ip, wait_for

ZERO_MAC = "00:00:00:00:00:00"
ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"


def gratuitous(capture: Capture, node: Node, vip: str, op: int) -> list[dict[str, Any]]:
    """ARP frames from ``node`` announcing ``vip``: sender and target address both the VIP."""
    return capture.frames(
        lambda f: (
            f["kind"] == "arp" and f["src_mac"] == node.mac and f["spa"] == vip and f["tpa"] == vip and f["op"] == op
        )
    )


def unsolicited_nas(capture: Capture, node: Node, vip: str) -> list[dict[str, Any]]:
    """Neighbour advertisements from ``node`` for ``vip`` that nobody asked for."""
    return capture.frames(
        lambda f: f["kind"] == "icmp6" and f["type"] == 136 and f["src_mac"] == node.mac and f.get("target") == vip
    )


def sync(lan: Lan, capture: Capture, node: Node) -> None:
    capture.sync(lambda: lan.ping_from(node), node.mac)


@pytest.mark.root
@pytest.mark.parametrize("count", [0, 1, 4])
def test_acquire_sends_arp_count_gratuitous_arps(lan: Lan, count: int) -> None:
    capture = lan.capture()
    vip = "192.0.2.20"
    result = lan.agent(lan.a, "acquire", f"{vip}/24 dev={lan.a.dev} arp_count={count} arp_interval=0.01")
    assert result.returncode == 0, result.stderr
    sync(lan, capture, lan.a)

    requests = gratuitous(capture, lan.a, vip, op=1)
    replies = gratuitous(capture, lan.a, vip, op=2)
    assert len(requests) == count, requests
    assert len(replies) == count, replies
    for f in requests:  # RFC 5227 announcement: broadcast request, target hardware address zero
        assert (f["dst_mac"], f["sha"], f["tha"]) == ("ff:ff:ff:ff:ff:ff", lan.a.mac, ZERO_MAC)
    for f in replies:  # the reply form: target hardware address = sender's, which Linux takes as gratuitous
        assert (f["dst_mac"], f["sha"], f["tha"]) == ("ff:ff:ff:ff:ff:ff", lan.a.mac, lan.a.mac)


@pytest.mark.root
def test_ipv6_acquire_sends_arp_count_unsolicited_neighbour_advertisements(lan: Lan) -> None:
    capture = lan.capture()
    vip = "2001:db8::20"
    result = lan.agent(lan.a, "acquire", f"{vip}/64 dev={lan.a.dev} dad=no arp_count=3 arp_interval=0.01")
    assert result.returncode == 0, result.stderr
    sync(lan, capture, lan.a)

    nas = unsolicited_nas(capture, lan.a, vip)
    assert len(nas) == 3, nas
    for f in nas:  # RFC 4861 7.2.6: to all nodes, Override set, Solicited clear, our MAC as target lladdr
        assert (f["ip_src"], f["ip_dst"], f["dst_mac"]) == (vip, ALL_NODES, ALL_NODES_MAC)
        assert f["hop_limit"] == 255 and f["code"] == 0 and f["checksum_ok"], f
        assert f["override"] and not f["solicited"] and not f["router"], f
        assert f["tlla"] == lan.a.mac, f
    assert not gratuitous(capture, lan.a, vip, op=1)  # no ARP for an IPv6 address, of course


@pytest.mark.root
def test_arp_interval_holds_back_every_announcement_after_the_first(lan: Lan) -> None:
    """With an interval far longer than the test, exactly the first announcement goes out while acquire
    waits to send the next one; a stop signal then ends the acquire as interrupted, not done."""
    capture = lan.capture()
    vip = "192.0.2.21"
    proc = lan.spawn_agent(lan.a, "acquire", f"{vip}/24 dev={lan.a.dev} arp_count=3 arp_interval=3600")
    capture.wait("the first announcement", lambda: len(gratuitous(capture, lan.a, vip, op=2)) >= 1)
    sync(lan, capture, lan.a)
    assert len(gratuitous(capture, lan.a, vip, op=1)) == 1
    assert len(gratuitous(capture, lan.a, vip, op=2)) == 1
    assert proc.poll() is None, "acquire finished without waiting arp_interval for the next announcement"

    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1, stderr
    assert "acquire interrupted by a signal" in stderr
    assert len(gratuitous(capture, lan.a, vip, op=1)) == 1


@pytest.mark.root
@pytest.mark.parametrize(("vip", "prefix", "extra"), [("192.0.2.22", "/24", ""), ("2001:db8::22", "/64", "dad=no")])
def test_monitor_re_announces_an_address_it_re_adds(lan: Lan, vip: str, prefix: str, extra: str) -> None:
    capture = lan.capture()
    ns, dev = lan.a.ns, lan.a.dev

    def announced() -> int:
        if ":" in vip:
            return len(unsolicited_nas(capture, lan.a, vip))
        requests, replies = gratuitous(capture, lan.a, vip, op=1), gratuitous(capture, lan.a, vip, op=2)
        assert len(requests) - len(replies) in (0, 1), (requests, replies)  # each announcement is both
        return len(replies)

    args = f"{vip}{prefix} dev={dev} arp_count=2 arp_interval=0.01 monitor_interval=0.1 {extra}"
    proc = lan.spawn_agent(lan.a, "respawn", args)
    lan.wait_acquired(proc)
    sync(lan, capture, lan.a)
    assert announced() == 2

    ip("-n", ns, "addr", "del", f"{vip}{prefix}", "dev", dev)
    wait_for("the monitor to re-add the VIP", lambda: f"{vip}{prefix}" in lan.addresses(ns, dev))
    capture.wait("the re-announcement", lambda: announced() >= 4)
    sync(lan, capture, lan.a)
    assert announced() == 4
    assert proc.poll() is None, "the agent exited instead of re-adding the address"
