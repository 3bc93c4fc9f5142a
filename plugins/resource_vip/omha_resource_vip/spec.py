"""What a ``@vip`` cltab command asks for, parsed and checked without touching the network.

``@vip ADDRESS[/PREFIX] [dev=IF] [label=NAME] [arp_count=N] [arp_interval=S] [dad=yes|no] [probe_timeout=S]
[monitor_interval=S]``. Parsing is pure so that ``omha check`` can validate a cltab on any node, including
one where the interface does not exist. Defaults for the numeric settings and ``dad`` may come from
``[agents.vip]`` in ``omha.toml``; a value on the cltab line wins.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omha_core.errors import ResourceError
from omha_core.params import Validator, check_params, seconds, whole_number, yes_no

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: announcements (gratuitous ARP / unsolicited NA) sent by acquire, and their spacing in seconds
DEFAULT_ARP_COUNT = 5
DEFAULT_ARP_INTERVAL = 0.2
#: how long check (and acquire with dad=yes on IPv4) listens for another host answering for the address
DEFAULT_PROBE_TIMEOUT = 1.0
#: seconds between two monitor calls under respawn
DEFAULT_MONITOR_INTERVAL = 2.0

#: settings accepted both as ``key=value`` on the cltab line and as ``[agents.vip]`` options
TUNABLES = ("arp_count", "arp_interval", "dad", "probe_timeout", "monitor_interval")
#: settings accepted only on the cltab line (they name one address's interface)
LINE_ONLY = ("dev", "label")

#: the tunables' validators (the agent's ``params_schema``); ``dev`` and ``label`` are checked by parse_spec
PARAMS: dict[str, Validator] = {
    "arp_count": whole_number(0),
    "arp_interval": seconds(zero=True, at_most=3600),
    "dad": yes_no,
    "probe_timeout": seconds(at_most=3600),
    "monitor_interval": seconds(at_most=3600),
}

_IFNAME = re.compile(r"^[A-Za-z0-9_.@:+-]{1,15}$")
_LABEL = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_EXAMPLE = "e.g. 192.0.2.10/24 or 2001:db8::10/64"


@dataclass(frozen=True)
class VipSpec:
    """One virtual address and how to hold it.

    ``prefixlen`` is None when the command gave none: acquire then takes the prefix of the interface's
    address whose subnet contains the VIP. ``dev`` None means "the interface whose subnet contains it".
    """

    address: IPAddress
    prefixlen: int | None
    dev: str | None
    label: str | None
    arp_count: int
    arp_interval: float
    dad: bool
    probe_timeout: float
    monitor_interval: float

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.address.version

    @property
    def text(self) -> str:
        """The address as written in messages: ``192.0.2.10/24``, or without prefix when none was given."""
        return f"{self.address}/{self.prefixlen}" if self.prefixlen is not None else str(self.address)

    def label_for(self, dev: str) -> str | None:
        """The kernel label for this address on ``dev`` (IPv4 only): ``label=web`` becomes ``dev:web``."""
        if self.label is None:
            return None
        label = self.label if (self.label == dev or self.label.startswith(dev + ":")) else f"{dev}:{self.label}"
        if ":" in self.label and label != self.label:
            raise ResourceError(f"label {self.label!r} must start with the interface name {dev!r} (e.g. {dev}:web)")
        if len(label) > 15:
            raise ResourceError(f"label {label!r} is longer than 15 characters; choose a shorter label=")
        return label


def parse_address(text: str) -> tuple[IPAddress, int | None]:
    """``192.0.2.10/24`` -> (address, 24); ``192.0.2.10`` -> (address, None). Raise with what to type."""
    addr_text, slash, prefix_text = text.partition("/")
    try:
        address = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ResourceError(f"bad address {text!r}: expected an IPv4 or IPv6 address, {_EXAMPLE}") from None
    bits = address.max_prefixlen
    prefixlen: int | None = None
    if slash:
        if not prefix_text.isdigit():
            raise ResourceError(f"bad prefix in {text!r}: expected a prefix length 1-{bits} after '/', {_EXAMPLE}")
        prefixlen = int(prefix_text)
        if not 1 <= prefixlen <= bits:
            raise ResourceError(
                f"bad prefix in {text!r}: prefix length {prefixlen} is out of range for IPv{address.version} (1-{bits})"
            )
    _check_unicast(address, prefixlen, text)
    return address, prefixlen


def _check_unicast(address: IPAddress, prefixlen: int | None, text: str) -> None:
    kinds = [
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_multicast, "a multicast address"),
        (address.is_link_local, "a link-local address"),
    ]
    if isinstance(address, ipaddress.IPv4Address):
        kinds.append((address == ipaddress.IPv4Address("255.255.255.255"), "the broadcast address"))
    for bad, what in kinds:
        if bad:
            raise ResourceError(f"bad address {text!r}: {what} cannot be a virtual IP; use a unicast address")
    if isinstance(address, ipaddress.IPv4Address) and prefixlen is not None and prefixlen <= 30:
        net = ipaddress.IPv4Network(f"{address}/{prefixlen}", strict=False)
        if address in (net.network_address, net.broadcast_address):
            which = "network" if address == net.network_address else "broadcast"
            raise ResourceError(f"bad address {text!r}: {address} is the {which} address of {net}")


def parse_spec(args: list[str], params: Mapping[str, str], options: Mapping[str, Any]) -> VipSpec:
    """Build a :class:`VipSpec` from the cltab words and the ``[agents.vip]`` options; raise on any mistake."""
    if len(args) != 1:
        got = " ".join(args) if args else "nothing"
        raise ResourceError(f"expected exactly one address ({_EXAMPLE}), got {got!r}")
    unknown = sorted(set(params) - set(TUNABLES) - set(LINE_ONLY))
    if unknown:
        known = ", ".join(f"{k}=" for k in (*LINE_ONLY, *TUNABLES))
        raise ResourceError(f"unknown parameter {unknown[0]}= (known: {known})")
    bad_options = sorted(set(options) - set(TUNABLES))
    if bad_options:
        raise ResourceError(
            f"unknown option {bad_options[0]!r} in [agents.vip] of omha.toml (known: {', '.join(TUNABLES)})"
        )
    address, prefixlen = parse_address(args[0])
    merged: dict[str, Any] = {**options, **params}

    dev = params.get("dev")
    if dev is not None and (not _IFNAME.match(dev) or dev in (".", "..")):
        raise ResourceError(f"dev={dev!r}: expected an interface name of at most 15 characters, e.g. dev=eth0")
    label = params.get("label")
    if label is not None:
        if address.version != 4:
            raise ResourceError("label= applies to IPv4 addresses only (the kernel keeps no labels for IPv6)")
        if not _LABEL.match(label):
            raise ResourceError(f"label={label!r}: expected letters, digits, '_', '.', '-' or ':', at most 15")
    defaults: dict[str, Any] = {
        "arp_count": DEFAULT_ARP_COUNT,
        "arp_interval": DEFAULT_ARP_INTERVAL,
        # the kernel's own default: IPv6 runs duplicate address detection, IPv4 does not
        "dad": address.version == 6,
        "probe_timeout": DEFAULT_PROBE_TIMEOUT,
        "monitor_interval": DEFAULT_MONITOR_INTERVAL,
    }
    tuned = check_params(PARAMS, {**defaults, **merged})
    spec = VipSpec(
        address=address,
        prefixlen=prefixlen,
        dev=dev,
        label=label,
        arp_count=tuned["arp_count"],
        arp_interval=tuned["arp_interval"],
        dad=tuned["dad"],
        probe_timeout=tuned["probe_timeout"],
        monitor_interval=tuned["monitor_interval"],
    )
    if dev is not None:
        spec.label_for(dev)
    return spec
