"""Telling the neighbours that an address has moved here: gratuitous ARP (IPv4) and unsolicited neighbour
advertisements (IPv6).

Hosts and switches keep a cache of which MAC answers for an address; after a failover that cache still points
at the old node until it times out (tens of seconds), unless the new holder announces itself. Several
announcements, spaced, cover one lost to a busy switch port or a receiver that was still learning.
"""

from __future__ import annotations

import ipaddress
import time

from omha_resource_vip.frames import ARP_REPLY, ARP_REQUEST, ETH_P_ARP, ETH_P_IPV6, gratuitous_arp, unsolicited_na
from omha_resource_vip.links import IPAddress, Link
from omha_resource_vip.wire import packet_socket


def announce(link: Link, address: IPAddress, count: int, interval: float) -> None:
    """Send ``count`` announcements of ``address`` at ``link``'s MAC, ``interval`` seconds apart.

    The first goes out at once. For IPv4 each announcement is an ARP request (RFC 5227's announcement)
    followed by an ARP reply of the same content, for equipment that only learns from replies.
    """
    if count <= 0:
        return
    if isinstance(address, ipaddress.IPv4Address):
        frames = [gratuitous_arp(link.mac, address, ARP_REQUEST), gratuitous_arp(link.mac, address, ARP_REPLY)]
        ethertype, what = ETH_P_ARP, "gratuitous ARP"
    else:
        frames = [unsolicited_na(link.mac, address)]
        ethertype, what = ETH_P_IPV6, "unsolicited neighbour advertisement"
    with packet_socket(link.name, ethertype, what) as sock:
        for n in range(count):
            if n:
                time.sleep(interval)
            for frame in frames:
                sock.send(frame)
