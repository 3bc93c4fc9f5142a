"""Is an address already answering from another host? ARP probe (RFC 5227) for IPv4, duplicate address
detection (RFC 4862) for IPv6.

Both ask the link "who has ADDRESS?" without claiming it (sender IP 0.0.0.0, or ``::``), so asking changes
no one's cache, and listen for a host that answers for the address — or that is itself probing for it at
the same moment. Frames sent from this interface's own MAC are ignored.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from omha_resource_vip.frames import (
    ARP_REQUEST,
    ETH_P_ARP,
    ETH_P_IPV6,
    ND_NEIGHBOR_ADVERT,
    ND_NEIGHBOR_SOLICIT,
    UNSPECIFIED6,
    arp_probe,
    dad_solicitation,
    mac_text,
    parse_arp,
    parse_nd,
)
from omha_resource_vip.links import IPAddress, Link
from omha_resource_vip.wire import PacketSocket, packet_socket

#: probes sent within the listening window (RFC 5227 sends 3; so does this)
PROBES = 3


def find_duplicate(link: Link, address: IPAddress, timeout: float) -> str | None:
    """Probe for ``address`` on ``link`` for ``timeout`` seconds.

    :return: None when no other host answered, else a description of who did (their MAC).
    """
    if isinstance(address, ipaddress.IPv4Address):
        with packet_socket(link.name, ETH_P_ARP, "the ARP probe") as sock:
            return _probe(sock, arp_probe(link.mac, address), timeout, lambda f: _arp_conflict(f, link, address))
    with packet_socket(link.name, ETH_P_IPV6, "duplicate address detection") as sock:
        return _probe(sock, dad_solicitation(link.mac, address), timeout, lambda f: _nd_conflict(f, link, address))


def _probe(sock: PacketSocket, probe: bytes, timeout: float, conflict: Callable[[bytes], str | None]) -> str | None:
    start = time.monotonic()
    for n in range(PROBES):
        sock.send(probe)
        until = start + timeout * (n + 1) / PROBES
        for frame in sock.receive_until(until):
            found = conflict(frame)
            if found:
                return found
    return None


def _arp_conflict(frame: bytes, link: Link, address: ipaddress.IPv4Address) -> str | None:
    arp = parse_arp(frame)
    if arp is None or link.mac in (arp.src_mac, arp.sender_mac):
        return None
    if arp.sender_ip == address:
        return f"answered by {mac_text(arp.sender_mac)}"
    if arp.op == ARP_REQUEST and arp.sender_ip == ipaddress.IPv4Address(0) and arp.target_ip == address:
        return f"{mac_text(arp.sender_mac)} is probing for it at the same time"
    return None


def _nd_conflict(frame: bytes, link: Link, address: ipaddress.IPv6Address) -> str | None:
    nd = parse_nd(frame)
    if nd is None or nd.src_mac == link.mac or nd.target != address:
        return None
    if nd.type == ND_NEIGHBOR_ADVERT:
        return f"answered by {mac_text(nd.src_mac)}"
    if nd.type == ND_NEIGHBOR_SOLICIT and nd.src_ip == UNSPECIFIED6:
        return f"{mac_text(nd.src_mac)} is probing for it at the same time"
    return None
