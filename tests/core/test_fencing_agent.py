"""The ``fence_agent`` kind against real ClusterLabs agents: ``fence_dummy`` (no hardware needed) and
``fence_apc_snmp`` talking to an SNMP simulator; plus a tiny agent of our own that echoes its stdin, the worst
case for secrets."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omha_core.builtin.fence_agent import FenceAgentDevice
from omha_core.config import Config, validate_config
from omha_core.errors import ConfigError
from omha_core.fencing import build_devices, fence_levels, query_device, secret_values
from omha_core.plugins import get_plugin_manager

PASSWORD = "Agent-pw-0f-n0-return"
COMMUNITY = "apc-8641"  # the simulated AP8641's community: a secret like any other here


def require_agent(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"needs {name} (Debian package fence-agents; 'make test' installs it)")
    return path


def config(tmp_path: Path, *devices: dict[str, Any]) -> Config:
    return validate_config({"node": "n1", "fencing": {"devices": list(devices)}}, str(tmp_path / "omha.toml"))


def dummy(tmp_path: Path, **args: Any) -> dict[str, Any]:
    """fence_dummy keeping its "power" in a file (it has no plugs: ``plug`` is ignored, with a warning)."""
    return {
        "name": "dummy",
        "kind": "fence_agent",
        "agent": require_agent("fence_dummy"),
        "args": {"type": "file", "status_file": str(tmp_path / "power"), **args},
        "nodes": {"n2": "1"},
    }


def test_booleans_are_written_as_the_agents_stdin_parser_reads_them() -> None:
    dev = FenceAgentDevice("pdu", {"agent": "fence_x", "args": {"verbose": True, "quiet": False, "ipport": 161}})
    # fencing.py's _parse_input_stdin: a bare "verbose" is ignored; "quiet=0" would *set* --quiet on agents
    # that test a flag's presence (Debian's 4.12 does)
    assert dev._stdin("off", "3").splitlines() == ["verbose=1", "ipport=161", "action=off", "plug=3"]


@pytest.mark.parametrize("key", ["action", "option", "plug", "port", "uuid", "nodename", "node_name", "node-name"])
def test_args_may_not_set_what_omha_sets_itself(tmp_path: Path, key: str) -> None:
    """The agents keep the last value of a repeated name: ``args = { action = "on" }`` must not be able to turn
    a fence into a power-on, nor another plug or node be switched than the nodes map says."""
    dev = dict(dummy(tmp_path), args={"ip": "192.0.2.7", key: "on"})
    with pytest.raises(ConfigError) as err:
        config(tmp_path, dev)
    assert f"[fencing.devices] dummy: [args] {key}: omha sets {key!r} itself" in str(err.value)
    assert "remove it from args" in str(err.value)


def test_omhas_action_wins_even_over_args_that_bypassed_the_schema(tmp_path: Path) -> None:
    """Belt and braces: the real agent reads omha's ``action`` last, so it is the one it does."""
    (tmp_path / "power").write_text("on")
    options = {"agent": require_agent("fence_dummy"), "args": {**dummy(tmp_path)["args"], "action": "on"}}
    result = FenceAgentDevice("dummy", options).fence("off", ["1"], "n2")
    assert result.ok and result.verified, result.message
    assert (tmp_path / "power").read_text() == "off"


def test_fence_dummy_off_status_on(tmp_path: Path) -> None:
    (tmp_path / "power").write_text("on")
    cfg = config(tmp_path, dummy(tmp_path))
    devices = build_devices(cfg, get_plugin_manager())
    outcome = fence_levels(devices, "n2", "off", [])
    assert outcome.result is not None and outcome.result.verified, outcome.errors
    assert (tmp_path / "power").read_text() == "off"  # the agent really switched its "outlet"
    status = query_device(devices[0], "status", "n2", [])
    assert status.ok and status.result is not None and status.result.state == "off"
    assert fence_levels(devices, "n2", "on", []).result is not None
    assert (tmp_path / "power").read_text() == "on"


def test_a_false_boolean_is_left_out_and_a_true_one_is_set(tmp_path: Path) -> None:
    """``quiet`` removes the agent's own stderr log handler (its timestamped ``... ERROR: Failed: ...`` line);
    ``false`` must leave it talking, which ``quiet=0`` would not (Debian's 4.12 tests the flag's presence)."""
    failing = dict(dummy(tmp_path), args={"type": "fail", "power_timeout": 1})
    talking = build_devices(
        config(tmp_path, dict(failing, args={**failing["args"], "quiet": False})), get_plugin_manager()
    )
    outcome = fence_levels(talking, "n2", "off", [])
    assert outcome.result is None and " ERROR: Failed: Timed out waiting to power OFF" in outcome.errors[0], (
        outcome.errors
    )
    quiet = build_devices(
        config(tmp_path, dict(failing, args={**failing["args"], "quiet": True})), get_plugin_manager()
    )
    outcome = fence_levels(quiet, "n2", "off", [])
    assert outcome.result is None and " ERROR: Failed:" not in outcome.errors[0], outcome.errors
    assert "ERROR:root:Failed: Timed out waiting to power OFF" in outcome.errors[0]  # the same failure, quieter


def echo_agent(tmp_path: Path) -> str:
    """A (tiny, real) fence agent that refuses and prints everything it was sent, secrets included."""
    path = tmp_path / "fence_echo"
    path.write_text("#!/bin/sh\necho \"login refused; I was sent: $(tr '\\n' ' ')\" >&2\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_secrets_in_args_are_scrubbed_from_what_the_agent_prints(tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="omha.fencing")
    dev = {
        "name": "pdu",
        "kind": "fence_agent",
        "agent": echo_agent(tmp_path),
        "args": {"ip": "192.0.2.7", "passwd": PASSWORD},
        "nodes": {"n2": "4"},
    }
    cfg = config(tmp_path, dev)
    assert PASSWORD in secret_values(cfg)
    outcome = fence_levels(build_devices(cfg, get_plugin_manager()), "n2", "off", secret_values(cfg))
    assert outcome.result is None and "login refused" in outcome.errors[0] and "passwd=***" in outcome.errors[0]
    # even the device alone (whatever the caller scrubs) never hands the secret back
    alone = fence_levels(build_devices(cfg, get_plugin_manager()), "n2", "off", [])
    assert "passwd=***" in alone.errors[0]
    assert "ip=192.0.2.7" in caplog.text  # the agent's whole output is in the debug log...
    assert PASSWORD not in caplog.text + " ".join(outcome.errors + alone.errors)  # ...without the secret


def test_omha_fence_never_prints_a_secret(tmp_path: Path, omha_env: dict[str, str]) -> None:
    toml = (
        f'node = "n1"\n[[fencing.devices]]\nname = "pdu"\nkind = "fence_agent"\nagent = "{echo_agent(tmp_path)}"\n'
        f'args = {{ ip = "192.0.2.7", passwd = "{PASSWORD}" }}\npassword = "{PASSWORD}x"\nnodes = {{ n2 = "4" }}\n'
    )
    (tmp_path / "omha.toml").write_text(toml)
    out = omha(tmp_path, omha_env, "fence", "n2", "--action", "off")
    assert out.returncode == 1 and "login refused" in out.stderr
    assert PASSWORD not in out.stdout + out.stderr
    # a wrong-typed secret is refused without showing it (the validators echo what they got, elsewhere)
    (tmp_path / "omha.toml").write_text(toml.replace(f'passwd = "{PASSWORD}"', f'passwd = ["{PASSWORD}"]'))
    for args in (("fence", "n2"), ("check",)):
        out = omha(tmp_path, omha_env, *args)
        assert out.returncode != 0 and "passwd: expected str (the value is not shown: it is a secret)" in out.stderr
        assert PASSWORD not in out.stdout + out.stderr


def omha(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omha_core.cli", args[0], "-c", str(tmp_path / "omha.toml"), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


# -- fence_apc_snmp against the SNMP simulator ------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("snmpsim", reason="needs snmpsim (pip install 'omha-fence-powerstrip[test]')")
    pytest.importorskip("snmpsim_data", reason="needs snmpsim-data (pip install 'omha-fence-powerstrip[test]')")
    require_agent("fence_apc_snmp")
    if shutil.which("snmpget") is None:
        pytest.skip("needs snmpget (Debian package snmp)")
    from omha_testing.snmpsim import start_simulator

    sim = start_simulator(tmp_path_factory.mktemp("snmpsim"))
    try:
        yield sim
    finally:
        sim.stop()


def apc_agent(sim: Any, **args: Any) -> dict[str, Any]:
    return {
        "name": "pdu-agent",
        "kind": "fence_agent",
        "agent": require_agent("fence_apc_snmp"),
        "args": {"ip": sim.host, "ipport": sim.port, "snmp_version": "1", "community": COMMUNITY, **args},
        "nodes": {"n5": "5"},
    }


def test_verbose_true_reaches_fence_apc_snmp_and_its_echoed_community_is_scrubbed(
    simulator: Any, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="omha.fencing")
    cfg = config(tmp_path, apc_agent(simulator, verbose=True))
    answer = query_device(build_devices(cfg, get_plugin_manager())[0], "status", "n5", secret_values(cfg))
    assert answer.ok and answer.result is not None and answer.result.state in ("on", "off"), answer
    # verbose=1 was honoured: the agent logged every snmpget it ran, community and all...
    assert "snmpget" in caplog.text and "Ignoring option" not in caplog.text, caplog.text
    # ...and the community it printed reached the log only as ***
    assert "-c '***'" in caplog.text and COMMUNITY not in caplog.text


def test_list_through_the_agent_and_through_the_apc_snmp_kind(simulator: Any, tmp_path: Path) -> None:
    pytest.importorskip("omha_fence_powerstrip", reason="needs the fence_powerstrip plugin")
    native = {"name": "pdu", "kind": "apc_snmp", "nodes": {"n5": "5"}, **simulator.options(COMMUNITY)}
    command = {"name": "script", "kind": "command", "command": "true", "nodes": {"n5": "5"}}
    cfg = config(tmp_path, apc_agent(simulator), native, command)
    agent_dev, apc_dev, script_dev = build_devices(cfg, get_plugin_manager())
    by_agent = query_device(agent_dev, "list", "n5", secret_values(cfg))
    by_kind = query_device(apc_dev, "list", "n5", secret_values(cfg))
    assert by_agent.ok and by_kind.ok, (by_agent.message, by_kind.message)
    assert [t.id for t in by_agent.targets] == [str(n) for n in range(1, 25)]
    # the ClusterLabs agent and omha's own SNMP code read the same outlet names off the same PDU
    assert [(t.id, t.name) for t in by_kind.targets] == [(t.id, t.name) for t in by_agent.targets]
    assert by_agent.targets[4].name == "ESX Server 5 PS 2"
    assert {t.state for t in by_kind.targets} <= {"on", "off"}
    unsupported = query_device(script_dev, "list", "n5", [])
    assert not unsupported.ok and not unsupported.supported
    assert unsupported.message == "listing its targets is not supported by kind 'command'"


def test_omha_fence_list_and_status(simulator: Any, tmp_path: Path, omha_env: dict[str, str]) -> None:
    dev = apc_agent(simulator)
    args = ", ".join(f'{k} = "{v}"' for k, v in dev["args"].items())
    (tmp_path / "omha.toml").write_text(
        f'node = "n1"\n[[fencing.devices]]\nname = "pdu-agent"\nkind = "fence_agent"\nagent = "{dev["agent"]}"\n'
        f'args = {{ {args} }}\nnodes = {{ n5 = "5" }}\n'
        f'[[fencing.devices]]\nname = "script"\nkind = "command"\ncommand = "echo off"\nnodes = {{ n5 = "5" }}\n'
    )
    out = omha(tmp_path, omha_env, "fence", "n5", "--action", "list")
    assert out.returncode == 0, out.stderr
    assert "pdu-agent (fence_agent), n5 on 5: 24 targets" in out.stdout
    assert any(line.split()[:1] == ["5"] and line.endswith("<- n5") for line in out.stdout.splitlines()), out.stdout
    assert "script (command), n5 on 5: list not supported: listing its targets is not supported" in out.stderr
    out = omha(tmp_path, omha_env, "fence", "n5", "--action", "status")
    assert out.returncode == 0, out.stderr
    assert "script (command), n5 on 5: state off (read back)" in out.stdout
    assert "pdu-agent (fence_agent), n5 on 5: " in out.stdout
    assert COMMUNITY not in out.stdout + out.stderr
