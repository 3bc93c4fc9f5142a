"""Switching real (simulated) APC PDUs, cross-checked with ClusterLabs' fence_apc_snmp on the same outlets.

Every PDU model path is exercised against the recording that selects it: the AP7902B (unknown sysObjectID:
MasterSwitch objects), the AP8641 (MasterSwitch v6: rPDU command, sPDU state) and the AP8641 announcing a
Rack PDU (rPDU command and rPDU state). Outlet states persist across tests, so each test uses its own
outlets and first sets the state it starts from.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omha_fence_powerstrip.device import ApcSnmpDevice
from omha_fence_powerstrip.models import MASTERSWITCH, MASTERSWITCH_V6, RACK_PDU, PduModel
from omha_testing.snmpsim import (
    V3_AUTH_KEY,
    V3_PRIV_KEY,
    V3_USER,
    Simulator,
    snmp_get,
    snmp_set_string,
)

from omha_core.config import validate_config
from omha_core.fence_devices import FenceResult
from omha_core.fencing import build_devices, fence_node, secret_values
from omha_core.plugins import get_plugin_manager

FenceApcSnmp = Callable[..., subprocess.CompletedProcess[str]]

SERVED = [
    pytest.param("apc-7902b", MASTERSWITCH, id="masterswitch-fallback"),
    pytest.param("apc-8641", MASTERSWITCH_V6, id="masterswitch-v6"),
    pytest.param("apc-8641-rpdu", RACK_PDU, id="rack-pdu"),
]


def device(sim: Simulator, community: str, **extra: Any) -> ApcSnmpDevice:
    return ApcSnmpDevice("pdu1", sim.options(community, timeout=10, **extra))


def raw_state(sim: Simulator, community: str, model: PduModel, outlet: int) -> str | None:
    """The outlet's state read straight from the agent, not through the device under test."""
    return model.state_of(int(snmp_get(sim.host, sim.port, community, model.status_oid(outlet))))


@pytest.mark.parametrize(("community", "model"), SERVED)
def test_omha_switches_off_and_fence_apc_snmp_reads_off(
    simulator: Simulator, fence_apc_snmp: FenceApcSnmp, community: str, model: PduModel
) -> None:
    dev = device(simulator, community)
    assert dev.on(["2"]).ok
    assert fence_apc_snmp(community, "2", "status").returncode == 0  # 0: on
    result = dev.off(["2"])
    assert result.ok and result.verified and result.state == "off", result.message
    assert model.label in result.message and f"{simulator.host}:{simulator.port}" in result.message
    status = fence_apc_snmp(community, "2", "status")
    assert status.returncode == 2 and "Status: OFF" in status.stdout, status.stdout + status.stderr


@pytest.mark.parametrize(("community", "model"), SERVED)
def test_fence_apc_snmp_switches_and_omha_reads(
    simulator: Simulator, fence_apc_snmp: FenceApcSnmp, community: str, model: PduModel
) -> None:
    dev = device(simulator, community)
    assert dev.on(["3"]).ok
    assert fence_apc_snmp(community, "3", "off").returncode == 0
    result = dev.status(["3"])
    assert result.ok and result.state == "off", result.message
    assert raw_state(simulator, community, model, 3) == "off"


def test_outlet_by_name_same_outlet_as_fence_apc_snmp(simulator: Simulator, fence_apc_snmp: FenceApcSnmp) -> None:
    # on a Rack PDU the names come from rPDUOutletStatusOutletName: outlet 2 is "DISK TRAY" in the recording
    dev = device(simulator, "apc-8641-rpdu")
    assert dev.on(["2"]).ok
    result = dev.off(["DISK TRAY"])
    assert result.ok and "outlet 2 'DISK TRAY' off" in result.message, result.message
    status = fence_apc_snmp("apc-8641-rpdu", "DISK TRAY", "status")
    assert status.returncode == 2, status.stdout + status.stderr


def test_list_outlets_agrees_with_fence_apc_snmp(simulator: Simulator, fence_apc_snmp: FenceApcSnmp) -> None:
    dev = device(simulator, "apc-8932")
    outlets = dev.list_outlets()
    listed = fence_apc_snmp("apc-8932", "1", "list")
    assert listed.returncode == 0, listed.stderr
    theirs = dict(line.split(",", 1) for line in listed.stdout.splitlines() if "," in line)
    assert {str(o.number): o.name for o in outlets} == theirs
    assert len(outlets) == 24 and all(o.state in ("on", "off") for o in outlets)
    assert [o.state for o in outlets] == [raw_state(simulator, "apc-8932", MASTERSWITCH_V6, o.number) for o in outlets]
    # v2c walks with GETBULK (32 rows a request), v1 with GETNEXT: the same table either way
    assert device(simulator, "apc-8932", version="2c").list_outlets() == outlets


def test_dual_supply_node_all_off_verified_then_all_on(simulator: Simulator) -> None:
    dev = device(simulator, "apc-8641", version="2c")
    assert dev.on(["4", "ESX Server 5 PS 2"]).ok
    result = dev.off(["4", "ESX Server 5 PS 2"])
    assert result.ok and result.state == "off"
    assert "outlet 4 'ESX Server 4 PS 2' off, outlet 5 'ESX Server 5 PS 2' off" in result.message
    assert [raw_state(simulator, "apc-8641", MASTERSWITCH_V6, n) for n in (4, 5)] == ["off", "off"]
    assert dev.on(["4", "5"]).ok
    assert [raw_state(simulator, "apc-8641", MASTERSWITCH_V6, n) for n in (4, 5)] == ["on", "on"]


def test_a_name_on_several_outlets_switches_them_all(simulator: Simulator) -> None:
    # operators label both supplies of a server alike: rename outlets 6 and 7 on the PDU itself
    for outlet in (6, 7):
        snmp_set_string(simulator.host, simulator.port, "apc-7902b", f"{MASTERSWITCH.names}.{outlet}", "db1")
    dev = device(simulator, "apc-7902b")
    assert dev.on(["6", "7"]).ok
    result = dev.off(["db1"])
    assert result.ok and "outlet 6 'db1' off, outlet 7 'db1' off" in result.message, result.message
    assert [raw_state(simulator, "apc-7902b", MASTERSWITCH, n) for n in (6, 7)] == ["off", "off"]


def test_status_is_on_while_any_outlet_is_on(simulator: Simulator) -> None:
    dev = device(simulator, "apc-8641-rpdu")
    assert dev.off(["9"]).ok and dev.on(["10"]).ok
    assert dev.status(["9", "10"]).state == "on"
    assert dev.off(["10"]).ok
    both = dev.status(["9", "10"])
    assert both.ok and both.verified and both.state == "off"


def test_reboot_goes_off_verified_then_on(simulator: Simulator, fence_apc_snmp: FenceApcSnmp) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options("apc-8641-rpdu", timeout=10, reboot_pause=0.2))
    assert dev.on(["11"]).ok
    result = dev.reboot(["11"])
    assert result.ok and result.verified and result.state == "on", result.message
    assert "outlet 11 'Outlet 11' off (verified after" in result.message and "; on again (after" in result.message
    assert fence_apc_snmp("apc-8641-rpdu", "11", "status").returncode == 0


def test_default_community_is_private(simulator: Simulator) -> None:
    dev = ApcSnmpDevice("pdu1", {"host": simulator.host, "port": simulator.port})
    result = dev.status(["1"])
    assert result.ok and "'IBM Server 1 PS1'" in result.message, result.message  # the PDU served as "private"


def test_community_from_file_and_environment(
    simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pdu.community"
    secret.write_text("apc-8641\n")
    by_file = ApcSnmpDevice("pdu1", {"host": simulator.host, "port": simulator.port, "community_file": str(secret)})
    assert by_file.status(["1"]).ok
    monkeypatch.setenv("OMHA_TEST_COMMUNITY", "apc-8641-rpdu")
    by_env = ApcSnmpDevice(
        "pdu1", {"host": simulator.host, "port": simulator.port, "community_env": "OMHA_TEST_COMMUNITY"}
    )
    result = by_env.status(["2"])
    assert result.ok and "'DISK TRAY'" in result.message


def test_snmp_v3_auth_and_privacy(simulator: Simulator) -> None:
    pytest.importorskip("cryptography", reason="SNMPv3 privacy needs cryptography (the [test] extra)")
    dev = ApcSnmpDevice(
        "pdu1",
        {
            "host": simulator.host,
            "port": simulator.port,
            "version": 3,
            "username": V3_USER,
            "auth_protocol": "sha",
            "auth_password": V3_AUTH_KEY,
            "priv_protocol": "aes",
            "priv_password": V3_PRIV_KEY,
            "context_name": "apc-8932",  # snmpsim picks the PDU by context name
        },
    )
    assert dev.on(["14"]).ok
    result = dev.off(["14"])
    assert result.ok and "outlet 14 'IBM Server 14 PS1' off" in result.message, result.message
    assert raw_state(simulator, "apc-8932", MASTERSWITCH_V6, 14) == "off"


def test_core_fences_a_node_through_apc_snmp(simulator: Simulator, tmp_path: Path) -> None:
    entry = {
        "name": "pdu1",
        "kind": "apc_snmp",
        "host": simulator.host,
        "port": simulator.port,
        "community": "apc-8641-rpdu",
        "version": "2c",
        "nodes": {"n1": "1", "n2": ["15", "16"]},
    }
    cfg = validate_config({"node": "n1", "fencing": {"devices": [entry]}}, str(tmp_path / "omha.toml"))
    devices = build_devices(cfg, get_plugin_manager())
    assert devices[0].device.fence("on", ["15", "16"]).ok
    result, name, errors = fence_node(devices, "n2", "off", secret_values(cfg))
    assert result is not None and result.ok and result.verified and name == "pdu1" and errors == []
    assert [raw_state(simulator, "apc-8641-rpdu", RACK_PDU, n) for n in (15, 16)] == ["off", "off"]
    assert raw_state(simulator, "apc-8641-rpdu", RACK_PDU, 1) == "on"  # n1's outlet untouched


def test_usable_from_inside_a_running_event_loop(simulator: Simulator) -> None:
    dev = device(simulator, "apc-8932")

    async def caller() -> str | None:
        return dev.status(["1"]).state  # a synchronous call from async code must not deadlock

    assert asyncio.run(caller()) in ("on", "off")


def test_two_fences_at_once_through_one_device(simulator: Simulator) -> None:
    # the daemon fences two lost nodes in two threads; both may sit on the same PDU
    dev = device(simulator, "apc-8641-rpdu", version="2c")
    assert dev.on(["17", "18"]).ok
    results: dict[str, FenceResult] = {}
    threads = [threading.Thread(target=lambda o=o: results.update({o: dev.off([o])})) for o in ("17", "18")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["17", "18"] and all(r.ok for r in results.values()), results
    assert [raw_state(simulator, "apc-8641-rpdu", RACK_PDU, n) for n in (17, 18)] == ["off", "off"]


def test_community_file_is_read_at_each_action(simulator: Simulator, tmp_path: Path) -> None:
    secret = tmp_path / "pdu.community"
    secret.write_text("not-the-community\n")
    options = {"host": simulator.host, "port": simulator.port, "community_file": str(secret)}
    dev = ApcSnmpDevice("pdu1", {**options, "timeout": 2.0, "snmp_timeout": 0.3, "retries": 1})
    first = dev.status(["1"])
    assert not first.ok and "no SNMP answer" in first.message and "not-the-community" not in first.message
    secret.write_text("apc-8932\n")  # the operator fixes the file; no restart needed
    assert dev.status(["1"]).ok


def test_omha_fence_command_uses_the_device(simulator: Simulator, tmp_path: Path) -> None:
    toml = tmp_path / "omha.toml"
    toml.write_text(
        f'node = "n1"\n[[fencing.devices]]\nname = "pdu1"\nkind = "apc_snmp"\nhost = "{simulator.host}"\n'
        f'port = {simulator.port}\ncommunity = "apc-8641"\nnodes = {{ n2 = ["19", "20"] }}\n'
    )
    omha = str(Path(sys.executable).with_name("omha"))
    off = subprocess.run([omha, "fence", "-c", str(toml), "--action", "off", "n2"], capture_output=True, text=True)
    assert off.returncode == 0 and "n2: off done by pdu1" in off.stdout, off.stdout + off.stderr
    assert "apc-8641" not in off.stdout + off.stderr  # the community
    assert [simulator.outlet_state("apc-8641", n) for n in (19, 20)] == ["off", "off"]
    on = subprocess.run([omha, "fence", "-c", str(toml), "--action", "on", "n2"], capture_output=True, text=True)
    assert on.returncode == 0 and [simulator.outlet_state("apc-8641", n) for n in (19, 20)] == ["on"] * 2


def test_host_given_by_name(simulator: Simulator) -> None:
    # "localhost" comes from /etc/hosts (no DNS); the simulator listens on 127.0.0.1, and on ::1 where it exists
    dev = ApcSnmpDevice("pdu1", {"host": "localhost", "port": simulator.port, "community": "apc-8932"})
    result = dev.status(["1"])
    assert result.ok and "pdu1 (localhost:" in result.message and "'IBM Server 1 PS1'" in result.message
