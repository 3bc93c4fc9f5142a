"""The ``@vip`` resource agent: a virtual IP address that moves with its resource group.

``web:ip:start:respawn:@vip 192.0.2.10/24 dev=eth0`` holds 192.0.2.10/24 on eth0 while the group ``web``
runs at level ``start`` on this node. Each action runs in its own child process (``omha_core.agent``):

- acquire: add the address (marked as omha's), wait for IPv6 duplicate address detection when it is on,
  then announce it (gratuitous ARP / unsolicited NA) so neighbours stop sending to the previous holder.
- release: remove the address if omha added it; leave every other address alone; idempotent.
- monitor (under ``respawn``): the address is still there; if it vanished, re-add and re-announce it.
- check (``test`` mode): the interface exists, is up and has carrier, and no other host answers for the
  address, so that a node that cannot host the address fails the group's test and another node is tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ResourceError
from omha_core.resources import ResourceAgent
from omha_resource_vip.announce import announce
from omha_resource_vip.duplicates import find_duplicate
from omha_resource_vip.links import Link, Netlink, dad_timeout, enable_promote_secondaries
from omha_resource_vip.probes import CONFIRM_FRACTION, note_clear, take_clear
from omha_resource_vip.spec import PARAMS, TUNABLES, VipSpec, parse_spec

log = logging.getLogger("omha.vip")

_DAD_POLL = 0.05


class VipAgent(ResourceAgent):
    """``@vip ADDRESS[/PREFIX] [dev=IF] [label=NAME] [arp_count=N] [arp_interval=S] [dad=yes|no]
    [probe_timeout=S] [monitor_interval=S]`` (see the plugin's README for each parameter)."""

    option_names = frozenset(TUNABLES)  # [agents.vip]: site defaults for the tunable parameters
    params_schema = PARAMS

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        super().__init__(args, params, options)
        self._spec: VipSpec | None = None
        #: (index, name) of the interface the address was last put on or seen on: what monitor watches when
        #: ``dev=`` is omitted (IPv6 addresses leave an interface that goes down, so the address alone cannot say)
        self._held: tuple[int, str] | None = None

    @property
    def spec(self) -> VipSpec:
        """The parsed command; raises :class:`ResourceError` when it is malformed."""
        if self._spec is None:
            self._spec = parse_spec(self.args, self.params, self.options)
            # the runner reads the interval from the instance; this agent takes it from its arguments
            self.monitor_interval = self._spec.monitor_interval
        return self._spec

    def validate(self) -> None:
        """Check the arguments only: ``omha check`` runs this on nodes that may lack the interface."""
        _ = self.spec

    # -- actions ----------------------------------------------------------------------------------------

    def acquire(self) -> None:
        """Add the address if it is not there yet, wait out IPv6 DAD, then announce it."""
        spec = self.spec
        with Netlink() as nl:
            link = self._link(nl)
            self._held = (link.index, link.name)
            if not link.up:
                raise ResourceError(f"interface {link.name} is down (bring it up: ip link set {link.name} up)")
            prefixlen = self._prefixlen(nl, link)
            present = nl.find(spec.address, link.index)
            for addr in present:
                if not addr.ours:
                    raise ResourceError(
                        f"{addr.address}/{addr.prefixlen} is already configured on {link.name}, but not by omha; "
                        "remove it from the node's static network configuration so that only omha moves it"
                    )
                if addr.dadfailed or addr.prefixlen != prefixlen:
                    nl.delete(addr, link.name)
                    present = []
            if not present:
                if spec.version == 4 and spec.dad:
                    self._refuse_duplicate(link, "ARP probe", after_check=True)
                label = spec.label_for(link.name) if spec.version == 4 else None
                nl.add(link, spec.address, prefixlen, label, spec.dad)
        if spec.version == 6 and spec.dad:
            self._wait_for_dad(link)
        announce(link, spec.address, spec.arp_count, spec.arp_interval)

    def release(self) -> None:
        """Remove the address from wherever omha added it; nothing there is not an error."""
        spec = self.spec
        with Netlink() as nl:
            links = {link.index: link for link in nl.links()}
            if spec.dev is not None:
                wanted = [i for i, link in links.items() if link.name == spec.dev]
                if not wanted:
                    return  # the interface is gone, and its addresses with it
                found = nl.find(spec.address, wanted[0])
            else:
                found = nl.find(spec.address)
            for addr in found:
                ifname = links[addr.index].name if addr.index in links else f"interface #{addr.index}"
                if not addr.ours:
                    log.warning("%s on %s was not added by omha; leaving it in place", addr.address, ifname)
                    continue
                if addr.address.version == 4 and not addr.secondary:
                    others = [
                        o
                        for o in nl.addresses(4)
                        if o.index == addr.index and o.secondary and o.address in addr.network
                    ]
                    if others:
                        enable_promote_secondaries(ifname)
                nl.delete(addr, ifname)

    def monitor(self) -> bool:
        """True while the address is on its interface and that interface is up; a vanished address is re-added
        and re-announced. False (the resource is lost) when the interface holding it is gone or down.

        The interface watched is ``dev=``, else the one the address is found on, else (the address vanished)
        the one it was last on: an interface set down must fail the monitor whether or not ``dev=`` was given.
        """
        spec = self.spec
        with Netlink() as nl:
            link = self._holding_link(nl)
            if link is None:
                name = spec.dev or (self._held[1] if self._held else "?")
                log.warning("interface %s of %s is gone", name, spec.text)
                return False
            if not link.up:
                log.warning("interface %s of %s is down", link.name, spec.text)
                return False
            if any(not a.dadfailed for a in nl.find(spec.address, link.index)):
                return True
        log.warning("%s vanished from %s; re-adding it", spec.text, link.name)
        try:
            self.acquire()
        except ResourceError as exc:
            log.warning("cannot re-add %s: %s", spec.text, exc)
            return False
        return True

    def check(self) -> None:
        """Fail unless this node can host the address now: interface up with carrier, address free."""
        with Netlink() as nl:
            link = self._link(nl)
        if not link.up:
            raise ResourceError(f"interface {link.name} is down")
        if not link.carrier:
            raise ResourceError(f"interface {link.name} has no carrier (cable, switch port or peer is down)")
        self._refuse_duplicate(link, "ARP probe" if self.spec.version == 4 else "duplicate address detection")
        if self.spec.version == 4 and self.spec.dad:  # only an acquire with dad=yes probes, and uses the note
            note_clear(link, self.spec.address)

    # -- helpers ----------------------------------------------------------------------------------------

    def _holding_link(self, nl: Netlink) -> Link | None:
        """The interface that holds (or last held) the address; None when it no longer exists.

        With ``dev=``, that interface. Without, the interface the address is configured on now (remembered),
        else the one remembered from acquire or an earlier monitor, else the one whose subnet holds the address
        (:class:`ResourceError` when none does).
        """
        spec = self.spec
        links = {link.index: link for link in nl.links()}
        if spec.dev is not None:
            return next((link for link in links.values() if link.name == spec.dev), None)
        where = [a.index for a in nl.find(spec.address) if not a.dadfailed and a.index in links]
        if where:
            index = self._held[0] if self._held and self._held[0] in where else where[0]
            self._held = (index, links[index].name)
        if self._held is None:
            link = self._link(nl)
            self._held = (link.index, link.name)
            return link
        return links.get(self._held[0])

    def _link(self, nl: Netlink) -> Link:
        """The interface to use: ``dev=``, else the one whose subnet contains the address."""
        spec = self.spec
        links = {link.index: link for link in nl.links()}
        if spec.dev is not None:
            for link in links.values():
                if link.name == spec.dev:
                    return link
            names = ", ".join(sorted(link.name for link in links.values()))
            raise ResourceError(f"interface {spec.dev} does not exist on this node (it has: {names})")
        indexes = {a.index for a in nl.addresses(spec.version) if spec.address in a.network and a.index in links}
        if not indexes:
            raise ResourceError(
                f"no interface here has an address in a subnet containing {spec.address}; name one with dev="
            )
        if len(indexes) > 1:
            names = ", ".join(sorted(links[i].name for i in indexes))
            raise ResourceError(f"{spec.address} is in a subnet of several interfaces ({names}); choose with dev=")
        return links[indexes.pop()]

    def _prefixlen(self, nl: Netlink, link: Link) -> int:
        """The prefix given, else the longest prefix of an address on ``link`` whose subnet holds the VIP."""
        spec = self.spec
        if spec.prefixlen is not None:
            return spec.prefixlen
        prefixes = [
            a.prefixlen for a in nl.addresses(spec.version) if a.index == link.index and spec.address in a.network
        ]
        if not prefixes:
            example = 24 if spec.version == 4 else 64
            raise ResourceError(
                f"no prefix length given and no address on {link.name} is in a subnet containing {spec.address}; "
                f"write it with its prefix, e.g. {spec.address}/{example}"
            )
        return max(prefixes)

    def _refuse_duplicate(self, link: Link, method: str, after_check: bool = False) -> None:
        """Probe; refuse when another host answers. ``after_check``: shorten the probe when a check found the
        address free just before (:mod:`omha_resource_vip.probes`)."""
        spec = self.spec
        timeout = spec.probe_timeout
        age = take_clear(link, spec.address, spec.probe_timeout) if after_check else None
        if age is not None:
            timeout = spec.probe_timeout * CONFIRM_FRACTION
            log.info(
                "%s: free in the check's probe %.2f s ago; confirming with a %.2f s probe", spec.text, age, timeout
            )
        found = find_duplicate(link, spec.address, timeout)
        if found:
            raise ResourceError(f"{spec.address} is already in use on the network of {link.name}: {found} ({method})")

    def _wait_for_dad(self, link: Link) -> None:
        """Wait until the kernel's IPv6 DAD for the address ends; remove the address again if it failed."""
        spec = self.spec
        timeout = dad_timeout(link.name)
        deadline = time.monotonic() + timeout
        with Netlink() as nl:
            while True:
                found = nl.find(spec.address, link.index)
                if not found:
                    raise ResourceError(f"{spec.address} vanished from {link.name} during duplicate address detection")
                if found[0].dadfailed:
                    nl.delete(found[0], link.name)
                    raise ResourceError(
                        f"{spec.address} is already in use on the network of {link.name}: another host answered "
                        "the kernel's duplicate address detection; the address was removed again"
                    )
                if not found[0].tentative:
                    return
                if time.monotonic() > deadline:
                    raise ResourceError(
                        f"{spec.address} on {link.name} is still tentative after {timeout:.1f} s of duplicate "
                        "address detection"
                    )
                time.sleep(_DAD_POLL)
