"""Parsing ``@vip`` commands (no root, no network): what is accepted, what is refused and how it is said,
and that ``omha check`` reports a bad ``@vip`` line with its file and line."""

from __future__ import annotations

import ipaddress

import pytest
from omha_resource_vip.agent import VipAgent
from omha_resource_vip.frames import multicast_mac, solicited_node
from omha_resource_vip.spec import parse_spec

from omha_core.errors import ParseError, ResourceError
from omha_core.plugins import get_plugin_manager, registry
from omha_core.validate import load_cltab


def spec_of(argstring: str, options: dict[str, object] | None = None) -> VipAgent:
    agent = VipAgent.from_command(argstring, options or {})
    assert isinstance(agent, VipAgent)
    agent.validate()
    return agent


def test_defaults_follow_the_kernel_per_family() -> None:
    v4 = spec_of("192.0.2.10/24 dev=eth0").spec
    v6 = spec_of("2001:db8::10/64").spec
    assert (v4.address, v4.prefixlen, v4.dev, v4.dad) == (ipaddress.ip_address("192.0.2.10"), 24, "eth0", False)
    assert (v6.prefixlen, v6.dev, v6.dad) == (64, None, True)
    assert (v4.arp_count, v4.arp_interval, v4.probe_timeout, v4.monitor_interval) == (5, 0.2, 1.0, 2.0)


def test_options_from_omha_toml_are_defaults_and_the_cltab_line_wins() -> None:
    agent = spec_of("192.0.2.10 arp_count=2", {"arp_count": 9, "arp_interval": 0.5, "monitor_interval": 1})
    assert (agent.spec.arp_count, agent.spec.arp_interval, agent.spec.prefixlen) == (2, 0.5, None)
    assert agent.monitor_interval == 1.0  # what omha_core.agent reads between monitor calls


@pytest.mark.parametrize(
    ("argstring", "options", "message"),
    [
        ("", {}, "expected exactly one address"),
        ("192.0.2.10/24 192.0.2.11/24", {}, "expected exactly one address"),
        ("eth0:192.0.2.10", {}, "bad address 'eth0:192.0.2.10'"),
        ("192.0.2.10/0", {}, "prefix length 0 is out of range for IPv4 (1-32)"),
        ("192.0.2.255/24", {}, "192.0.2.255 is the broadcast address of 192.0.2.0/24"),
        ("224.0.0.5/24", {}, "a multicast address cannot be a virtual IP"),
        ("fe80::5/64", {}, "a link-local address cannot be a virtual IP"),
        ("2001:db8::5/64 label=web", {}, "label= applies to IPv4 addresses only"),
        ("192.0.2.10/24 dev=eth0 label=eth1:web", {}, "label 'eth1:web' must start with the interface name 'eth0'"),
        ("192.0.2.10/24 dev=eth0 label=averyverylongname", {}, "at most 15"),
        ("192.0.2.10/24 dev=a/b", {}, "dev='a/b': expected an interface name"),
        ("192.0.2.10/24 dad=maybe", {}, "dad='maybe': expected yes or no"),
        ("192.0.2.10/24 probe_timeout=0", {}, "probe_timeout='0': expected a number of seconds, greater than zero"),
        ("192.0.2.10/24 arp_interval=soon", {}, "arp_interval='soon': expected a number of seconds"),
        ("192.0.2.10/24", {"dev": "eth0"}, "unknown option 'dev' in [agents.vip] of omha.toml"),
    ],
)
def test_bad_commands_are_refused_with_what_to_write(argstring: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ResourceError) as err:
        spec_of(argstring, options)
    assert message in str(err.value)


def test_label_is_prefixed_with_the_interface() -> None:
    spec = parse_spec(["192.0.2.10/24"], {"label": "web"}, {})
    assert spec.label_for("eth0") == "eth0:web"
    assert parse_spec(["192.0.2.10/24"], {"label": "eth0:web"}, {}).label_for("eth0") == "eth0:web"


def test_the_plugin_registers_vip() -> None:
    agents = registry(get_plugin_manager(), "omha_resource_agents")
    assert agents["vip"][0] is VipAgent


def test_omha_check_reports_a_bad_vip_line_with_file_and_line() -> None:
    text = "web:ip:start:respawn:@vip 192.0.2.10/24 dev=eth0\nweb:ip2:start:respawn:@vip 192.0.2.300/24\n"
    pm = get_plugin_manager()
    with pytest.raises(ParseError) as err:
        load_cltab(text, "cltab", pm)
    assert str(err.value) == (
        "cltab:2: @vip: bad address '192.0.2.300/24': expected an IPv4 or IPv6 address, "
        "e.g. 192.0.2.10/24 or 2001:db8::10/64"
    )
    assert len(load_cltab(text.splitlines()[0], "cltab", pm).entries) == 1


def test_ipv6_multicast_mapping_matches_rfc_4291_and_2464() -> None:
    # RFC 4291 2.7.1: 4037::01:800:200E:8C6C -> FF02::1:FF0E:8C6C
    assert solicited_node(ipaddress.IPv6Address("4037::01:800:200E:8C6C")) == ipaddress.IPv6Address("ff02::1:ff0e:8c6c")
    assert multicast_mac(ipaddress.IPv6Address("ff02::1")) == bytes.fromhex("333300000001")
