"""release removes exactly the address omha added, leaves every other address alone, and can be repeated."""

from __future__ import annotations

import pytest
from omha_testing.lan import Lan, ip


@pytest.mark.root
def test_release_is_idempotent_and_keeps_other_addresses(lan: Lan) -> None:
    ns, dev = lan.a.ns, lan.a.dev
    # the VIP is the first address of its subnet on veth-a, so the kernel makes it the primary; a hand-made
    # address and a second VIP in the same subnet become its secondaries, which the kernel would delete
    # together with the primary unless release arranges for them to be promoted
    vip = f"198.51.100.10/24 dev={dev} arp_count=1"
    assert lan.agent(lan.a, "acquire", vip).returncode == 0
    ip("-n", ns, "addr", "add", "198.51.100.20/24", "dev", dev)
    assert lan.agent(lan.a, "acquire", f"198.51.100.30/24 dev={dev} arp_count=1").returncode == 0
    before = lan.addresses(ns, dev)

    for _ in range(2):
        result = lan.agent(lan.a, "release", vip)
        assert result.returncode == 0, result.stderr
    after = lan.addresses(ns, dev)

    assert "198.51.100.10/24" not in after
    assert sorted(after) == sorted(a for a in before if a != "198.51.100.10/24")
    for kept in ("198.51.100.20/24", "198.51.100.30/24", "192.0.2.2/24", "2001:db8::2/64"):
        assert kept in after


@pytest.mark.root
def test_release_when_the_interface_is_gone_succeeds(lan: Lan) -> None:
    assert lan.agent(lan.a, "release", "192.0.2.10/24 dev=veth-gone").returncode == 0


@pytest.mark.root
def test_address_configured_by_hand_is_neither_taken_over_nor_removed(lan: Lan) -> None:
    ns, dev = lan.a.ns, lan.a.dev
    ip("-n", ns, "addr", "add", "192.0.2.40/24", "dev", dev)

    acquire = lan.agent(lan.a, "acquire", f"192.0.2.40/24 dev={dev}")
    assert acquire.returncode == 1
    assert "already configured on veth-a, but not by omha" in acquire.stderr

    release = lan.agent(lan.a, "release", f"192.0.2.40/24 dev={dev}")
    assert release.returncode == 0, release.stderr
    assert "not added by omha" in release.stderr
    assert "192.0.2.40/24" in lan.addresses(ns, dev)
