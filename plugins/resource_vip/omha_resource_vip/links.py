"""Interfaces and addresses through netlink (:mod:`omha_resource_vip.rtnl`): list, add, delete, and read DAD
state.

Every request runs with the stop signals (SIGTERM, SIGINT, SIGHUP) held back: the agent turns those signals
into an exception, and one raised inside a request's exchange could leave an address half-configured or the
socket unusable for the release that follows. They are delivered as soon as the request returns.

Addresses this agent adds carry the address protocol :data:`OMHA_ADDR_PROTO` (``IFA_PROTO``, Linux 6.1+),
which is how release and acquire tell an address omha added from the same address configured by hand.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from omha_core.errors import ResourceError
from omha_resource_vip.rtnl import (
    IFA_ADDRESS,
    IFA_FLAGS,
    IFA_LABEL,
    IFA_LOCAL,
    IFA_PROTO,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    Message,
    NetlinkError,
    Rtnl,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")

#: IFA_PROTO value that marks an address as added by omha (0-3 are the kernel's; see rt_addrprotos(5))
OMHA_ADDR_PROTO = 0x6F
IFF_UP, IFF_LOWER_UP = 0x1, 0x10000
IFA_F_SECONDARY, IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x01, 0x02, 0x08, 0x40
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@dataclass(frozen=True)
class Link:
    """A network interface as the agent needs it."""

    index: int
    name: str
    mac: bytes
    up: bool  # administratively up (IFF_UP)
    carrier: bool  # lower layer up (IFF_LOWER_UP): cable in, veth peer up


@dataclass(frozen=True)
class Address:
    """One address configured on an interface."""

    index: int
    address: IPAddress
    prefixlen: int
    flags: int
    proto: int | None
    label: str | None

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        """The subnet this address makes on-link."""
        return ipaddress.ip_network(f"{self.address}/{self.prefixlen}", strict=False)

    @property
    def ours(self) -> bool:
        """Added by omha, or (on kernels that keep no address protocol) indistinguishable from it."""
        return self.proto == OMHA_ADDR_PROTO or not kernel_keeps_addr_proto()

    @property
    def tentative(self) -> bool:
        """IPv6 DAD still running: the address cannot be used yet."""
        return bool(self.flags & IFA_F_TENTATIVE) and not self.dadfailed

    @property
    def dadfailed(self) -> bool:
        """IPv6 DAD found another holder; the kernel keeps the address but never uses it."""
        return bool(self.flags & IFA_F_DADFAILED)

    @property
    def secondary(self) -> bool:
        """IPv4: not the first address of its subnet on the interface."""
        return bool(self.flags & IFA_F_SECONDARY)


def kernel_keeps_addr_proto() -> bool:
    """True on Linux 6.1 and later, where the kernel stores ``IFA_PROTO`` with each address."""
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (6, 1)


@contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold back SIGTERM, SIGINT and SIGHUP for the duration of the block; they are delivered after it."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _translate(exc: Exception, what: str) -> ResourceError:
    code = getattr(exc, "code", None)
    if code in (errno.EPERM, errno.EACCES):
        return ResourceError(f"permission denied {what}: needs root or CAP_NET_ADMIN")
    if code == errno.ENODEV:
        return ResourceError(f"{what}: the interface no longer exists")
    reason = os.strerror(code) if isinstance(code, int) else str(exc)
    return ResourceError(f"{what}: {reason}")


class Netlink:
    """A netlink route socket in the current network namespace. Use as a context manager."""

    def __init__(self) -> None:
        with deferred_signals():
            try:
                self._ipr = Rtnl()
            except OSError as exc:
                raise ResourceError(f"cannot open a netlink socket: {exc.strerror or exc}") from None

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        with deferred_signals():
            self._ipr.close()

    def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with deferred_signals():
            try:
                return fn(*args, **kwargs)
            except NetlinkError as exc:
                raise _translate(exc, what) from None

    # -- interfaces -------------------------------------------------------------------------------------

    def links(self) -> list[Link]:
        """Every interface in this namespace."""
        return [_link(msg) for msg in self._call("listing interfaces", self._ipr.links)]

    def link(self, name: str) -> Link | None:
        """The interface called ``name``, or None."""
        for link in self.links():
            if link.name == name:
                return link
        return None

    # -- addresses --------------------------------------------------------------------------------------

    def addresses(self, version: int | None = None) -> list[Address]:
        """Every address on every interface, of one IP version when ``version`` is given."""
        msgs = self._call("listing addresses", self._ipr.addresses)
        found = [_address(msg) for msg in msgs]
        return [a for a in found if a is not None and (version is None or a.address.version == version)]

    def find(self, address: IPAddress, index: int | None = None) -> list[Address]:
        """Where ``address`` is configured (on interface ``index`` only, when given)."""
        return [
            a for a in self.addresses(address.version) if a.address == address and (index is None or a.index == index)
        ]

    def add(self, link: Link, address: IPAddress, prefixlen: int, label: str | None, dad: bool) -> None:
        """Add ``address/prefixlen`` to ``link``, marked as omha's; ``dad`` False skips IPv6 DAD."""
        kwargs: dict[str, Any] = {"proto": OMHA_ADDR_PROTO}
        if isinstance(address, ipaddress.IPv4Address):
            if label:
                kwargs["label"] = label
            net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
            if prefixlen <= 30:
                kwargs["broadcast"] = net.broadcast_address  # what `ip addr add ... brd +` sets
        elif not dad:
            kwargs["flags"] = IFA_F_NODAD
        what = f"adding {address}/{prefixlen} to {link.name}"
        self._call(what, self._ipr.add_address, link.index, address, prefixlen, **kwargs)

    def delete(self, addr: Address, ifname: str) -> None:
        """Remove one address; an address already gone is not an error."""
        what = f"removing {addr.address}/{addr.prefixlen} from {ifname}"
        with deferred_signals():
            try:
                self._ipr.delete_address(addr.index, addr.address, addr.prefixlen)
            except NetlinkError as exc:
                if exc.code in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT):
                    return
                raise _translate(exc, what) from None


def _link(msg: Message) -> Link:
    flags = msg.fields["flags"]
    return Link(
        index=msg.fields["index"],
        name=str(msg.text(IFLA_IFNAME)),
        mac=msg.attrs.get(IFLA_ADDRESS) or bytes(6),
        up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_LOWER_UP),
    )


def _address(msg: Message) -> Address | None:
    raw = msg.attrs.get(IFA_LOCAL) or msg.attrs.get(IFA_ADDRESS)
    if not raw or len(raw) not in (4, 16):
        return None
    flags = msg.u32(IFA_FLAGS)
    return Address(
        index=msg.fields["index"],
        address=ipaddress.ip_address(raw),
        prefixlen=msg.fields["prefixlen"],
        flags=flags if flags is not None else msg.fields["flags"],
        proto=msg.u8(IFA_PROTO),
        label=msg.text(IFA_LABEL),
    )


def enable_promote_secondaries(ifname: str) -> None:
    """Let the kernel promote a secondary IPv4 address when the primary of its subnet is removed.

    Without it, removing a primary address removes every secondary of the same subnet with it — another
    group's VIP, or the node's own address — which release must never do.
    """
    path = f"/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries"
    try:
        with open(path, "w") as f:
            f.write("1\n")
    except PermissionError:
        raise ResourceError(f"permission denied writing {path}: needs root") from None
    except OSError as exc:
        raise ResourceError(f"cannot write {path}: {exc.strerror}") from None


def dad_timeout(ifname: str) -> float:
    """Seconds the kernel may take for IPv6 DAD on ``ifname``, from its sysctls, plus a margin."""

    def read(path: str, default: float) -> float:
        try:
            with open(path) as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            return default

    transmits = read(f"/proc/sys/net/ipv6/conf/{ifname}/dad_transmits", 1)
    delay = read(f"/proc/sys/net/ipv6/conf/{ifname}/rtr_solicit_delay", 1)
    retrans_ms = read(f"/proc/sys/net/ipv6/neigh/{ifname}/retrans_time_ms", 1000)
    return delay + transmits * retrans_ms / 1000 + 2.0
