"""A passing ``check`` lets the ``acquire`` right after it probe briefly (``dad=yes``, where an IPv4 acquire
probes too; omha_resource_vip.probes); an address taken by another host in between is still refused."""

from __future__ import annotations

import os

import pytest
from omha_resource_vip.probes import NOTES
from omha_testing.lan import Lan, Node


def notes(node: Node) -> list[str]:
    """The probe notes kept for ``node``'s network namespace."""
    netns = os.stat(f"/run/netns/{node.ns}").st_ino
    return [n for n in os.listdir(NOTES) if n.startswith(f"{netns}-")] if os.path.isdir(NOTES) else []


@pytest.mark.root
def test_a_passing_check_leaves_a_note_that_one_acquire_uses(lan: Lan) -> None:
    vip = f"192.0.2.70/24 dev={lan.b.dev} probe_timeout=10 dad=yes"
    assert lan.agent(lan.b, "check", vip).returncode == 0
    assert len(notes(lan.b)) == 1 and notes(lan.a) == []
    held = lan.agent(lan.b, "acquire", f"{vip} arp_count=1")
    assert held.returncode == 0, held.stderr
    assert notes(lan.b) == []  # used up
    assert lan.agent(lan.b, "release", vip).returncode == 0


@pytest.mark.root
def test_a_check_leaves_no_note_where_no_acquire_would_use_it(lan: Lan) -> None:
    assert lan.agent(lan.b, "check", f"192.0.2.73/24 dev={lan.b.dev} probe_timeout=0.3").returncode == 0  # dad=no
    assert notes(lan.b) == []


@pytest.mark.root
def test_an_address_taken_between_the_check_and_the_acquire_is_refused(lan: Lan) -> None:
    assert lan.agent(lan.b, "check", f"192.0.2.71/24 dev={lan.b.dev} probe_timeout=10 dad=yes").returncode == 0
    taken = lan.agent(lan.a, "acquire", f"192.0.2.71/24 dev={lan.a.dev} dad=no arp_count=1")
    assert taken.returncode == 0, taken.stderr
    refused = lan.agent(lan.b, "acquire", f"192.0.2.71/24 dev={lan.b.dev} probe_timeout=10 dad=yes arp_count=1")
    assert refused.returncode == 1
    assert f"already in use on the network of {lan.b.dev}: answered by {lan.a.mac}" in refused.stderr
    assert "192.0.2.71/24" not in lan.addresses(lan.b.ns, lan.b.dev)
    assert lan.agent(lan.a, "release", f"192.0.2.71/24 dev={lan.a.dev}").returncode == 0


@pytest.mark.root
def test_a_failed_check_leaves_no_note(lan: Lan) -> None:
    assert lan.agent(lan.a, "acquire", f"192.0.2.72/24 dev={lan.a.dev} dad=no arp_count=1").returncode == 0
    assert lan.agent(lan.b, "check", f"192.0.2.72/24 dev={lan.b.dev} probe_timeout=0.5 dad=yes").returncode == 1
    assert notes(lan.b) == []
    assert lan.agent(lan.a, "release", f"192.0.2.72/24 dev={lan.a.dev}").returncode == 0
