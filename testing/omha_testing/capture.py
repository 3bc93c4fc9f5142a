"""Watching the wire from the client's namespace: every ARP, ICMP and ICMPv6 frame its bridge receives.

Run as a script inside a namespace (``ip netns exec NS python capture.py IFNAME``) it binds a raw
``AF_PACKET`` socket to IFNAME, prints ``ready`` once bound, then one JSON line per frame received from another
host until it is terminated. The frames are decoded here, independently of the agent's own ``frames`` module,
so that a test counting them checks what really went out rather than what the agent believes it built.
:class:`Capture` is the test-side handle: it starts the script, collects its lines, and :meth:`Capture.sync`
makes sure every frame a node sent before a given moment has been read.

Only the standard library is imported: the script runs with nothing but the interpreter.
"""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ARP, IPV4, IPV6 = 0x0806, 0x0800, 0x86DD


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def _icmp6_checksum_ok(src: bytes, dst: bytes, message: bytes) -> bool:
    """RFC 8200 8.1: the one's complement sum over pseudo-header and message, checksum included, is 0xffff."""
    data = src + dst + struct.pack("!I3xB", len(message), 58) + message
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _nd_options(options: bytes) -> dict[str, str]:
    """Source / target link-layer address options (types 1 and 2) of a neighbour discovery message."""
    out: dict[str, str] = {}
    while len(options) >= 8 and options[1]:
        kind, size = options[0], options[1] * 8
        if kind in (1, 2) and size >= 8:
            out["slla" if kind == 1 else "tlla"] = _mac(options[2:8])
        options = options[size:]
    return out


def decode(frame: bytes) -> dict[str, Any] | None:
    """What a test needs to know about one Ethernet frame, or None for a frame of no interest."""
    if len(frame) < 14:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    out: dict[str, Any] = {"dst_mac": _mac(frame[0:6]), "src_mac": _mac(frame[6:12])}
    body = frame[14:]
    if ethertype == ARP and len(body) >= 28:
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", body)
        if (htype, ptype, hlen, plen) != (1, IPV4, 6, 4):
            return None
        out.update(
            kind="arp",
            op=op,
            sha=_mac(body[8:14]),
            spa=str(ipaddress.IPv4Address(body[14:18])),
            tha=_mac(body[18:24]),
            tpa=str(ipaddress.IPv4Address(body[24:28])),
        )
        return out
    if ethertype == IPV4 and len(body) >= 20 and body[9] == 1:
        header = (body[0] & 0x0F) * 4
        out.update(
            kind="icmp4",
            ip_src=str(ipaddress.IPv4Address(body[12:16])),
            ip_dst=str(ipaddress.IPv4Address(body[16:20])),
            type=body[header] if len(body) > header else None,
        )
        return out
    if ethertype == IPV6 and len(body) >= 44 and body[6] == 58:
        (length,) = struct.unpack_from("!H", body, 4)
        icmp = body[40 : 40 + length]
        out.update(
            kind="icmp6",
            ip_src=str(ipaddress.IPv6Address(body[8:24])),
            ip_dst=str(ipaddress.IPv6Address(body[24:40])),
            hop_limit=body[7],
            type=icmp[0],
            code=icmp[1],
            checksum_ok=_icmp6_checksum_ok(body[8:24], body[24:40], icmp),
        )
        if icmp[0] in (135, 136) and len(icmp) >= 24:
            (flags,) = struct.unpack_from("!I", icmp, 4)
            out.update(
                target=str(ipaddress.IPv6Address(icmp[8:24])),
                router=bool(flags & 0x80000000),
                solicited=bool(flags & 0x40000000),
                override=bool(flags & 0x20000000),
                **_nd_options(icmp[24:]),
            )
        return out
    return None


def main(ifname: str) -> int:
    """Print every decoded frame received on ``ifname`` until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((ifname, ETH_P_ALL))
    print("ready", flush=True)
    while True:
        frame, address = sock.recvfrom(65535)
        if address[0] != ifname or address[2] == PACKET_OUTGOING:
            continue
        decoded = decode(frame)
        if decoded is not None:
            print(json.dumps(decoded), flush=True)


class Capture:
    """A running capture in a namespace; :meth:`close` (or the owning :class:`~.lan.Lan`) stops it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self._frames: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(15) or self.proc.poll() is not None:
            err = self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""
            raise AssertionError(f"the capture did not start: {err}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "ready":
                self._ready.set()
                continue
            with self._lock:
                self._frames.append(json.loads(line))

    def frames(self, predicate: Callable[[dict[str, Any]], bool] = lambda f: True) -> list[dict[str, Any]]:
        """The frames received so far that satisfy ``predicate``, in arrival order."""
        with self._lock:
            return [f for f in self._frames if predicate(f)]

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Poll until ``predicate`` holds; fail naming ``what`` and the frames seen after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; frames: {self.frames()}")
            time.sleep(0.02)

    def sync(self, ping_from: Callable[[], None], mac: str) -> None:
        """Make sure every frame ``mac`` sent so far has been read: ``ping_from`` sends an echo request from
        that host, and the capture is read until it shows up (frames from one host arrive in order)."""

        def marker(f: dict[str, Any]) -> bool:
            return f.get("kind") in ("icmp4", "icmp6") and f["src_mac"] == mac and f["type"] in (8, 128)

        before = len(self.frames(marker))
        ping_from()
        self.wait(f"the echo request from {mac}", lambda: len(self.frames(marker)) > before)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
