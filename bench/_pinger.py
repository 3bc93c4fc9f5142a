"""The failover benchmarks' client: ping a VIP every few ms and tell echo replies apart by source MAC.

``bench_vip_failover.py`` and ``bench_vs_keepalived.py`` both run :func:`pinger` inside a client namespace (as
``python bench/<script>.py --pinger ...``). It prints ``ready`` at the first reply from the old holder's MAC, then
``reply TIME`` (CLOCK_MONOTONIC, shared by all network namespaces) at the first reply from the new holder's MAC,
or ``timeout``. Kept in one place so that both benchmarks stop their clocks by the same rule.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable

ETH_P_IP = 0x0800


def wait(who: str, what: str, predicate: Callable[[], object], timeout: float) -> None:
    """Poll ``predicate`` until it is true; stop benchmark ``who`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"{who}: timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _echo_reply_from(frame: bytes, address: bytes, ident: int) -> str | None:
    """The source MAC of ``frame`` when it is an IPv4 echo reply from ``address`` to our ``ident``, else None."""
    if len(frame) < 34 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        return None
    ip_header = frame[14:]
    if ip_header[9] != socket.IPPROTO_ICMP or ip_header[12:16] != address:
        return None
    icmp = ip_header[(ip_header[0] & 0x0F) * 4 :]
    if len(icmp) < 8 or icmp[0] != 0 or struct.unpack_from("!H", icmp, 4)[0] != ident:
        return None
    return ":".join(f"{b:02x}" for b in frame[6:12])


def pinger(address: str, old_mac: str, new_mac: str, timeout: float, every: float, dev: str = "br0") -> int:
    """Ping ``address`` every ``every`` s, listening on ``dev``; say ``ready`` at the first reply from ``old_mac``,
    then ``reply TIME`` at the first from ``new_mac`` after that (``timeout`` if none comes)."""
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    listen.bind((dev, ETH_P_IP))
    ident, seq, ready = os.getpid() & 0xFFFF, 0, False
    target = socket.inet_aton(address)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        header = header[:2] + struct.pack("!H", _checksum(header)) + header[4:]
        try:
            send.sendto(header, (address, 0))
        except OSError:
            pass  # the neighbour entry failed while nobody answered: keep trying
        until = time.monotonic() + every
        while (left := until - time.monotonic()) > 0:
            if not select.select([listen], [], [], left)[0]:
                break
            frame = listen.recv(2048)
            now = time.monotonic()
            mac = _echo_reply_from(frame, target, ident)
            if mac == old_mac and not ready:
                ready = True
                print("ready", flush=True)
            elif mac == new_mac and ready:
                print(f"reply {now}", flush=True)
                return 0
    print("timeout", flush=True)
    return 1
