"""The core's ``fence_agent`` kind driving the real ClusterLabs ``fence_apc_snmp``, and a multi-node omha
cluster whose lost node is switched off at the (simulated) APC strip before its group moves."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab
from omha_testing.snmpsim import Simulator
from powerstrip_support import fence_apc_snmp_path

from omha_core.config import validate_config
from omha_core.fencing import build_devices, fence_node, secret_values
from omha_core.plugins import get_plugin_manager

COMMUNITY = "apc-8641"


def agent_device(sim: Simulator, tmp_path: Path, nodes: dict[str, str]) -> dict[str, object]:
    secret = tmp_path / "community"
    secret.write_text(COMMUNITY + "\n")
    return {
        "name": "pdu-agent",
        "kind": "fence_agent",
        "agent": fence_apc_snmp_path(),
        "args": {"ip": sim.host, "ipport": sim.port, "snmp_version": "1"},
        "community_file": str(secret),
        "nodes": nodes,
    }


def test_fence_agent_kind_runs_fence_apc_snmp(
    simulator: Simulator, fence_apc_snmp: Callable[..., CompletedProcess[str]], tmp_path: Path
) -> None:
    assert fence_apc_snmp(COMMUNITY, "5", "on").returncode == 0
    cfg = validate_config({"fencing": {"devices": [agent_device(simulator, tmp_path, {"n5": "5"})]}})
    devices = build_devices(cfg, get_plugin_manager())
    result, device, errors = fence_node(devices, "n5", "off", secret_values(cfg))
    assert result is not None and result.ok and result.verified and device == "pdu-agent", errors
    # cross-check with the agent's own command line and with omha's status action
    assert fence_apc_snmp(COMMUNITY, "5", "status").returncode == 2  # 2 = off
    status, _, _ = fence_node(devices, "n5", "status", [])
    assert status is not None and status.state == "off"
    result, _, _ = fence_node(devices, "n5", "on", [])
    assert result is not None and result.ok
    assert fence_apc_snmp(COMMUNITY, "5", "status").returncode == 0  # 0 = on


def test_fence_agent_wrong_community_fails_clearly(simulator: Simulator, tmp_path: Path) -> None:
    dev = agent_device(simulator, tmp_path, {"n5": "5"})
    dev.pop("community_file")
    dev["community"] = "wrong-community-xyz"
    cfg = validate_config({"fencing": {"devices": [dev]}})
    result, _, errors = fence_node(build_devices(cfg, get_plugin_manager()), "n5", "off", secret_values(cfg))
    assert result is None and errors[0].startswith("pdu-agent (fence_agent): pdu-agent: off plug 5: exit 1")
    assert "wrong-community-xyz" not in errors[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["apc_snmp", "fence_agent"])
def test_lost_node_outlet_switched_off_before_takeover(
    simulator: Simulator, fence_apc_snmp: Callable[..., CompletedProcess[str]], tmp_path: Path, kind: str
) -> None:
    require_commands("flock")
    outlets = {"n1": "6", "n2": "7", "n3": "8"}
    for outlet in outlets.values():
        assert fence_apc_snmp(COMMUNITY, outlet, "on").returncode == 0
    if kind == "apc_snmp":
        device: dict[str, object] = {
            "name": "pdu",
            "kind": "apc_snmp",
            "nodes": outlets,
            "timeout": 10,
            **simulator.options(COMMUNITY),
        }
    else:
        device = agent_device(simulator, tmp_path, outlets)
    c = Cluster(
        tmp_path,
        3,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        devices=[device],
        config={"fencing": {"action": "off"}},
    )
    try:
        c.start()
        victim = c.wait_running("web")
        c.kill(victim, signal.SIGKILL)
        new = c.wait_running("web", 60, exclude=(victim,))
        record = c.fence_record(victim)
        assert record["ok"] and record["verified"] and record["device"] == device["name"]
        assert record["time"] < c.report()["groups"]["web"]["instances"][new]["since"]
        assert fence_apc_snmp(COMMUNITY, outlets[victim], "status").returncode == 2  # off at the strip
        for node, outlet in outlets.items():
            if node != victim:
                assert fence_apc_snmp(COMMUNITY, outlet, "status").returncode == 0  # the others untouched
    finally:
        c.close()
