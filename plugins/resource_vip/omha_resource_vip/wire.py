"""Sending and receiving whole Ethernet frames on one interface (``AF_PACKET``), for announcements and
duplicate detection.

A packet socket, not the ``arping`` / ``ndsend`` commands: the two ``arping`` programs Debian ships take
different flags, ``ndisc6`` is one more package, neither can send an IPv6 DAD probe from ``::`` and report
who answered, and spawning a command per announcement costs more than the announcement. A packet socket
needs CAP_NET_RAW, which an agent that may add addresses (CAP_NET_ADMIN) runs with anyway.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from omha_core.errors import ResourceError

#: sll_pkttype of a frame this host sent (a packet socket sees its own outgoing frames too)
PACKET_OUTGOING = 4


class PacketSocket:
    """A raw Ethernet socket bound to one interface and one EtherType."""

    def __init__(self, sock: socket.socket, ifname: str) -> None:
        self._sock = sock
        self.ifname = ifname

    def send(self, frame: bytes) -> None:
        """Send one frame; raise :class:`ResourceError` naming the interface on failure."""
        try:
            self._sock.send(frame)
        except OSError as exc:
            raise ResourceError(f"cannot send on {self.ifname}: {exc.strerror or exc}") from None

    def receive_until(self, deadline: float) -> Iterator[bytes]:
        """Yield frames received from other hosts until ``deadline`` (a :func:`time.monotonic` value)."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            ready, _, _ = select.select([self._sock], [], [], left)
            if not ready:
                return
            frame, address = self._sock.recvfrom(2048)
            # frames from other interfaces can arrive between socket() and bind()
            if address[0] == self.ifname and address[2] != PACKET_OUTGOING:
                yield frame


@contextmanager
def packet_socket(ifname: str, ethertype: int, purpose: str) -> Iterator[PacketSocket]:
    """Open a :class:`PacketSocket` on ``ifname``; ``purpose`` names the action in error messages."""
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
    except PermissionError:
        raise ResourceError(f"permission denied: {purpose} needs root or CAP_NET_RAW") from None
    try:
        try:
            sock.bind((ifname, ethertype))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise ResourceError(f"interface {ifname} does not exist") from None
            raise ResourceError(f"cannot open {ifname} for {purpose}: {exc.strerror or exc}") from None
        yield PacketSocket(sock, ifname)
    finally:
        sock.close()
