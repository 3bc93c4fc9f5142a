"""The builtin fence device kinds and device levels, with real commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from omha_core.config import Config, validate_config
from omha_core.errors import ConfigError
from omha_core.fencing import build_devices, fence_node, scrub, secret_values
from omha_core.plugins import get_plugin_manager


def config(tmp_path: Path, *devices: dict[str, object]) -> Config:
    return validate_config({"node": "n1", "fencing": {"devices": list(devices)}}, str(tmp_path / "omha.toml"))


def recorder(tmp_path: Path, exit_code: int = 0, state: str = "off") -> str:
    """A command that logs its environment and answers like a power switch."""
    log = tmp_path / "calls"
    return (
        f'echo "$OMHA_NODE $OMHA_ACTION $OMHA_TARGET" >> {log}; '
        f'if [ "$OMHA_ACTION" = status ]; then echo {state}; fi; exit {exit_code}'
    )


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_command_device_gets_node_action_and_every_target(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, {"name": "sw", "kind": "command", "command": recorder(tmp_path), "nodes": {"n3": ["3", "4"]}}
    )
    devices = build_devices(cfg, get_plugin_manager())
    result, device, errors = fence_node(devices, "n3", "off", [])
    assert result is not None and result.ok and device == "sw" and errors == []
    assert calls(tmp_path) == ["n3 off 3", "n3 off 4"]
    assert not result.verified  # verify not asked for


def test_command_device_verifies_off_with_status(tmp_path: Path) -> None:
    good = {"name": "sw", "kind": "command", "command": recorder(tmp_path), "verify": True, "nodes": {"n2": "7"}}
    devices = build_devices(config(tmp_path, good), get_plugin_manager())
    result, _, _ = fence_node(devices, "n2", "off", [])
    assert result is not None and result.verified
    assert calls(tmp_path) == ["n2 off 7", "n2 status 7"]
    # a switch that claims success but still reports "on" is a failure
    liar = dict(good, command=recorder(tmp_path, 0, "on"))
    devices = build_devices(config(tmp_path, liar), get_plugin_manager())
    result, _, errors = fence_node(devices, "n2", "off", [])
    assert result is None and "status says 'on'" in errors[0]


def test_levels_second_device_used_when_first_fails(tmp_path: Path) -> None:
    first = {"name": "broken", "kind": "command", "command": "echo no power >&2; exit 3", "nodes": {"n2": "1"}}
    second = {"name": "backup", "kind": "command", "command": recorder(tmp_path), "nodes": {"n2": "B"}}
    other = {"name": "other", "kind": "command", "command": recorder(tmp_path), "nodes": {"n9": "9"}}
    devices = build_devices(config(tmp_path, other, first, second), get_plugin_manager())
    result, device, errors = fence_node(devices, "n2", "reboot", [])
    assert result is not None and device == "backup"
    assert errors == ["broken (command): broken: reboot 1: exit 3: no power"]
    assert calls(tmp_path) == ["n2 reboot B"]  # the device that does not cover n2 was not called


def test_all_devices_fail(tmp_path: Path) -> None:
    dev = {"name": "d", "kind": "command", "command": "sleep 5", "timeout": 0.3, "nodes": {"n2": "1"}}
    devices = build_devices(config(tmp_path, dev), get_plugin_manager())
    result, device, errors = fence_node(devices, "n2", "off", [])
    assert result is None and device is None and "timed out after 0.3 s" in errors[0]


def test_device_options_validated_against_kind_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[fencing.devices\] sw: .*command: required key is missing"):
        config(tmp_path, {"name": "sw", "kind": "command", "nodes": {"n1": "1"}})
    with pytest.raises(ConfigError, match=r"\[fencing.devices\] sw: .*colour: unknown key"):
        config(tmp_path, {"name": "sw", "kind": "command", "command": "true", "colour": "red", "nodes": {"n1": "1"}})


def test_secrets_scrubbed_from_device_messages(tmp_path: Path) -> None:
    dev = {
        "name": "pdu",
        "kind": "fence_agent",
        "agent": "no_such_fence_agent_xyz",
        "password": "hunter2-secret",
        "nodes": {"n2": "1"},
    }
    cfg = config(tmp_path, dev)
    assert secret_values(cfg) == ["hunter2-secret"]
    assert scrub("login failed for hunter2-secret", ["hunter2-secret"]) == "login failed for ***"
    pw_file = tmp_path / "pw"
    pw_file.write_text("from-a-file\n")
    filed = dict(dev, name="pdu2", password_file=str(pw_file))
    del filed["password"]
    assert secret_values(config(tmp_path, dev, filed)) == ["hunter2-secret", "from-a-file"]
    devices = build_devices(cfg, get_plugin_manager())
    result, _, errors = fence_node(devices, "n2", "off", secret_values(cfg))
    assert result is None and "not found" in errors[0] and "hunter2" not in errors[0]


def test_a_hung_device_plugin_is_abandoned_after_its_timeout(tmp_path: Path) -> None:
    import time as _time

    from omha_core.fence_devices import FenceDevice, FenceResult
    from omha_core.fencing import Device, run_device

    class Hangs(FenceDevice):
        def off(self, targets: list[str]) -> FenceResult:
            _time.sleep(3600)
            return FenceResult(ok=True)

    dev = Device("stuck", "hangs", "test", Hangs("stuck", {}), {"n2": ["1"]}, None, timeout=0.1)
    result = run_device(dev, "off", "n2", [])  # returns after the timeout and its margin, not after an hour
    assert not result.ok and result.message == "stuck: no answer within 0.1 s (timeout)"
