"""Ethernet frames for address announcement and duplicate detection: ARP (RFC 826, 5227) and IPv6 neighbour
discovery (RFC 4861, 4862), built and parsed as bytes.

Pure functions, no sockets: :mod:`omha_resource_vip.wire` sends and receives them. Only the four messages
the agent needs are built — gratuitous ARP (request and reply forms), ARP probe, unsolicited neighbour
advertisement, duplicate-address-detection neighbour solicitation — and only what the agent reads is parsed.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARP_REQUEST, ARP_REPLY = 1, 2
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
#: NA flags (RFC 4861 4.4): Override makes receivers replace a cached link-layer address
NA_FLAG_ROUTER, NA_FLAG_SOLICITED, NA_FLAG_OVERRIDE = 0x80000000, 0x40000000, 0x20000000
#: ND option: target link-layer address
ND_OPT_TARGET_LLADDR = 2
IPPROTO_ICMPV6 = 58

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
ALL_NODES = ipaddress.IPv6Address("ff02::1")
UNSPECIFIED6 = ipaddress.IPv6Address("::")
_MIN_FRAME = 60  # Ethernet minimum without FCS


def mac_text(mac: bytes) -> str:
    """``b'\\x02\\x00...'`` -> ``02:00:...``."""
    return ":".join(f"{b:02x}" for b in mac)


def _ether(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return frame.ljust(_MIN_FRAME, b"\x00")


# ---------------------------------------------------------------------------------------------------------
# ARP
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arp:
    """The fields of an Ethernet/IPv4 ARP packet that duplicate detection looks at."""

    src_mac: bytes  # Ethernet source
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_mac: bytes
    target_ip: ipaddress.IPv4Address


def arp_frame(
    op: int,
    src_mac: bytes,
    sender_ip: ipaddress.IPv4Address,
    target_mac: bytes,
    target_ip: ipaddress.IPv4Address,
    dst_mac: bytes = BROADCAST_MAC,
) -> bytes:
    """An Ethernet frame carrying one ARP packet (hardware Ethernet, protocol IPv4)."""
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op)
    body += src_mac + sender_ip.packed + target_mac + target_ip.packed
    return _ether(dst_mac, src_mac, ETH_P_ARP, body)


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address, op: int = ARP_REQUEST) -> bytes:
    """An ARP announcement: sender and target are the address, so every receiver updates its cache.

    The request form is RFC 5227's announcement; the reply form (target MAC = sender MAC, which Linux
    requires to treat a reply as gratuitous) is for older equipment that only learns from replies.
    """
    target_mac = mac if op == ARP_REPLY else ZERO_MAC
    return arp_frame(op, mac, address, target_mac, address)


def arp_probe(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """An RFC 5227 probe: "who has ADDRESS?" from sender IP 0.0.0.0, so no receiver caches anything."""
    return arp_frame(ARP_REQUEST, mac, ipaddress.IPv4Address(0), ZERO_MAC, address)


def parse_arp(frame: bytes) -> Arp | None:
    """The ARP packet in ``frame``, or None when it is not an Ethernet/IPv4 ARP packet."""
    if len(frame) < 42 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return None
    return Arp(
        src_mac=frame[6:12],
        op=op,
        sender_mac=frame[22:28],
        sender_ip=ipaddress.IPv4Address(frame[28:32]),
        target_mac=frame[32:38],
        target_ip=ipaddress.IPv4Address(frame[38:42]),
    )


# ---------------------------------------------------------------------------------------------------------
# IPv6 neighbour discovery
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nd:
    """A neighbour solicitation or advertisement: who sent it and which address it is about."""

    src_mac: bytes  # Ethernet source
    type: int
    src_ip: ipaddress.IPv6Address
    target: ipaddress.IPv6Address


def solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The solicited-node multicast group of ``address`` (ff02::1:ffXX:XXXX, RFC 4291 2.7.1)."""
    return ipaddress.IPv6Address(b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + address.packed[13:])


def multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    """The Ethernet address an IPv6 multicast group maps to (33:33 + its last 32 bits, RFC 2464 7)."""
    return b"\x33\x33" + group.packed[12:]


def icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum: one's complement sum over the pseudo-header (RFC 8200 8.1) and the message."""
    data = src.packed + dst.packed + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6) + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ipv6_frame(
    src_mac: bytes, dst_mac: bytes, src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, icmp: bytes
) -> bytes:
    checksum = icmpv6_checksum(src, dst, icmp)
    icmp = icmp[:2] + struct.pack("!H", checksum) + icmp[4:]
    # version 6, no traffic class or flow label; hop limit 255 as ND requires (receivers drop anything else)
    header = struct.pack("!IHBB", 6 << 28, len(icmp), IPPROTO_ICMPV6, 255) + src.packed + dst.packed
    return _ether(dst_mac, src_mac, ETH_P_IPV6, header + icmp)


def unsolicited_na(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """An unsolicited neighbour advertisement to all nodes, Override set: "ADDRESS is now at MAC"."""
    icmp = struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE) + address.packed
    icmp += struct.pack("!BB", ND_OPT_TARGET_LLADDR, 1) + mac
    return _ipv6_frame(mac, multicast_mac(ALL_NODES), address, ALL_NODES, icmp)


def dad_solicitation(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """A duplicate-address-detection solicitation: from ``::`` to the address's solicited-node group.

    A host that holds the address answers with an advertisement to all nodes (RFC 4862 5.4.3).
    """
    group = solicited_node(address)
    icmp = struct.pack("!BBHI", ND_NEIGHBOR_SOLICIT, 0, 0, 0) + address.packed
    return _ipv6_frame(mac, multicast_mac(group), UNSPECIFIED6, group, icmp)


def parse_nd(frame: bytes) -> Nd | None:
    """The neighbour solicitation or advertisement in ``frame``, or None for anything else.

    Only ND sent directly over IPv6 (no extension headers) with hop limit 255 is accepted, as RFC 4861
    requires of receivers.
    """
    if len(frame) < 14 + 40 + 24 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IPV6:
        return None
    if frame[14] >> 4 != 6 or frame[14 + 6] != IPPROTO_ICMPV6 or frame[14 + 7] != 255:
        return None
    icmp_type = frame[54]
    if icmp_type not in (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT) or frame[55] != 0:
        return None
    return Nd(
        src_mac=frame[6:12],
        type=icmp_type,
        src_ip=ipaddress.IPv6Address(frame[22:38]),
        target=ipaddress.IPv6Address(frame[62:78]),
    )
