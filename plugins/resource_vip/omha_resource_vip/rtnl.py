"""Just enough rtnetlink for the ``@vip`` agent, on a plain ``AF_NETLINK`` socket: list interfaces and
addresses, add and delete one address.

Every ``@vip`` action is a process of its own on the failover's critical path, and importing pyroute2 costs
about ten times the agent's own netlink work (its package imports its whole API: asyncio, multiprocessing, its
netlink database). The messages needed here are few and fixed (``rtnetlink(7)``), so they are built and parsed
with :mod:`struct` only.

A request returns the kernel's answer or raises :class:`NetlinkError` with the kernel's errno in ``code``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 16, 18, 20, 21, 22
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR = 0x1, 0x2, 0x4, 0x10
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME = 1, 3
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_FLAGS, IFA_PROTO = 1, 2, 3, 4, 8, 11

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTATTR = struct.Struct("=HH")
#: a dump interrupted by a concurrent change is read again this many times
DUMP_RETRIES = 5


class NetlinkError(OSError):
    """The kernel refused a request; ``code`` is its errno."""

    def __init__(self, code: int, what: str = "") -> None:
        super().__init__(code, f"{what}: {os.strerror(code)}" if what else os.strerror(code))
        self.code = code


@dataclass
class Message:
    """One answer: the fixed header's fields and the attributes (``{type: raw bytes}``)."""

    fields: dict[str, int]
    attrs: dict[int, bytes] = field(default_factory=dict)

    def text(self, kind: int) -> str | None:
        raw = self.attrs.get(kind)
        return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None

    def u32(self, kind: int) -> int | None:
        raw = self.attrs.get(kind)
        return struct.unpack_from("=I", raw)[0] if raw is not None and len(raw) >= 4 else None

    def u8(self, kind: int) -> int | None:
        raw = self.attrs.get(kind)
        return raw[0] if raw else None


def _attr(kind: int, data: bytes) -> bytes:
    size = _RTATTR.size + len(data)
    return _RTATTR.pack(size, kind) + data + b"\0" * (-size % 4)


def _attrs(buf: bytes, offset: int, end: int) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    while offset + _RTATTR.size <= end:
        size, kind = _RTATTR.unpack_from(buf, offset)
        if size < _RTATTR.size or offset + size > end:
            break
        found[kind & 0x3FFF] = buf[offset + _RTATTR.size : offset + size]  # without NLA_F_NESTED / NET_BYTEORDER
        offset += (size + 3) & ~3
    return found


class Rtnl:
    """A route netlink socket in the current network namespace. Use as a context manager."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the exchange -------------------------------------------------------------------------------------

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, self._seq, 0) + body)
        return self._seq

    def _answers(self, seq: int) -> Iterator[tuple[int, int, bytes, int, int]]:
        """``(type, flags, buffer, payload offset, end)`` of every message answering ``seq`` until the last."""
        while True:
            buf = self._sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(buf):
                size, kind, flags, mseq, _pid = _NLMSGHDR.unpack_from(buf, offset)
                if size < _NLMSGHDR.size:
                    return
                end = offset + size
                if mseq == seq:
                    yield kind, flags, buf, offset + _NLMSGHDR.size, end
                    if kind in (NLMSG_DONE, NLMSG_ERROR) or not flags & NLM_F_MULTI:
                        return
                offset = (end + 3) & ~3

    def _request(self, kind: int, body: bytes, what: str) -> None:
        """Send a change and wait for its acknowledgement; raise :class:`NetlinkError` when refused."""
        seq = self._send(kind, NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if kind == RTM_NEWADDR else 0), body)
        for mkind, _flags, buf, start, _end in self._answers(seq):
            if mkind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", buf, start)[0]
                if code:
                    raise NetlinkError(code, what)
                return

    def _dump(self, kind: int, body: bytes, head: struct.Struct, names: tuple[str, ...]) -> list[Message]:
        for _ in range(DUMP_RETRIES):
            seq = self._send(kind, NLM_F_DUMP, body)
            found: list[Message] = []
            interrupted = False
            for mkind, flags, buf, start, end in self._answers(seq):
                if mkind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", buf, start)[0]
                    if code:
                        raise NetlinkError(code)
                    break
                if mkind == NLMSG_DONE:
                    break
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                values = head.unpack_from(buf, start)
                found.append(Message(dict(zip(names, values, strict=True)), _attrs(buf, start + head.size, end)))
            if not interrupted:
                return found
        raise NetlinkError(errno.EINTR, "the kernel's list kept changing while it was read")

    # -- what the agent asks ------------------------------------------------------------------------------

    def links(self) -> list[Message]:
        """Every interface: fields ``family type index flags change``, attributes ``IFLA_*``."""
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return self._dump(RTM_GETLINK, body, _IFINFOMSG, ("family", "type", "index", "flags", "change"))

    def addresses(self) -> list[Message]:
        """Every address: fields ``family prefixlen flags scope index``, attributes ``IFA_*``."""
        body = _IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return self._dump(RTM_GETADDR, body, _IFADDRMSG, ("family", "prefixlen", "flags", "scope", "index"))

    def add_address(self, index: int, address: Any, prefixlen: int, **extra: Any) -> None:
        """Add ``address/prefixlen`` to interface ``index``; ``extra``: ``label``, ``broadcast`` (IPv4),
        ``flags`` (``IFA_F_*``), ``proto`` (``IFA_PROTO``)."""
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        flags = int(extra.get("flags", 0))
        body = _IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index)
        body += _attr(IFA_LOCAL, address.packed) + _attr(IFA_ADDRESS, address.packed)
        if extra.get("label"):
            body += _attr(IFA_LABEL, str(extra["label"]).encode() + b"\0")
        if extra.get("broadcast") is not None:
            body += _attr(IFA_BROADCAST, extra["broadcast"].packed)
        if flags > 0xFF:
            body += _attr(IFA_FLAGS, struct.pack("=I", flags))
        if extra.get("proto") is not None:
            body += _attr(IFA_PROTO, bytes([int(extra["proto"])]))
        self._request(RTM_NEWADDR, body, f"adding {address}/{prefixlen}")

    def delete_address(self, index: int, address: Any, prefixlen: int) -> None:
        """Remove ``address/prefixlen`` from interface ``index``."""
        family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        body = _IFADDRMSG.pack(family, prefixlen, 0, 0, index) + _attr(IFA_LOCAL, address.packed)
        self._request(RTM_DELADDR, body, f"removing {address}/{prefixlen}")
