"""The apc_snmp kind as omha.toml sees it: registration, option schema, defaults, errors, cheap import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omha_fence_powerstrip.device import ApcSnmpDevice

from omha_core.config import Config, validate_config
from omha_core.errors import ConfigError
from omha_core.plugins import get_plugin_manager, registry


def config(tmp_path: Path, **options: Any) -> Config:
    device = {"name": "pdu1", "kind": "apc_snmp", "nodes": {"n1": "1", "n2": ["web2", "7"]}, **options}
    return validate_config({"node": "n1", "fencing": {"devices": [device]}}, str(tmp_path / "omha.toml"))


def test_kind_registered_by_the_plugin() -> None:
    kinds = registry(get_plugin_manager(), "omha_fence_devices")
    cls, plugin = kinds["apc_snmp"]
    assert cls is ApcSnmpDevice and plugin == "fence_powerstrip"
    assert ApcSnmpDevice.can_verify


def test_defaults_follow_fence_apc_snmp(tmp_path: Path) -> None:
    (dev,) = config(tmp_path, host="192.0.2.10").section("fencing")["devices"]
    assert dev["port"] == 161 and dev["version"] == "1" and dev["model"] == "auto"
    assert dev["snmp_timeout"] == 1.0 and dev["retries"] == 2 and dev["timeout"] == 20.0
    assert "community" not in dev  # the device falls back to "private" when it acts
    assert dev["nodes"] == {"n1": ["1"], "n2": ["web2", "7"]}


@pytest.mark.parametrize(("given", "version"), [(1, "1"), ("2c", "2c"), (2, "2c"), ("3", "3"), (3, "3")])
def test_snmp_version_spellings(tmp_path: Path, given: object, version: str) -> None:
    (dev,) = config(tmp_path, host="192.0.2.10", version=given).section("fencing")["devices"]
    assert dev["version"] == version


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, r"pdu1: .*host: required key is missing"),
        ({"host": "192.0.2.10", "port": 0}, r"port: expected a UDP port number from 1 to 65535, got 0"),
        ({"host": "192.0.2.10", "version": "2"}, None),
        ({"host": "192.0.2.10", "version": "v5"}, r"version: expected SNMP version 1, \"2c\" or 3, got 'v5'"),
        ({"host": "192.0.2.10", "model": "ap9999"}, r"model: expected one of 'auto', 'rack_pdu'"),
        ({"host": "192.0.2.10", "retries": -1}, r"retries: expected a whole number, zero or more"),
        ({"host": "192.0.2.10", "priv_protocol": "rot13"}, r"priv_protocol: expected one of 'none', 'des'"),
        ({"host": "192.0.2.10", "comunity": "x"}, r"comunity: unknown key"),
        ({"host": "two words"}, r"host: expected a host name or IP address"),
    ],
)
def test_bad_options_name_the_key_and_what_to_type(
    tmp_path: Path, options: dict[str, Any], message: str | None
) -> None:
    if message is None:
        config(tmp_path, **options)
        return
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, **options)


def test_direct_construction_validates_too() -> None:
    dev = ApcSnmpDevice("pdu9", {"host": "192.0.2.10", "community": "x"})
    assert dev.options["port"] == 161 and dev.options["version"] == "1"
    with pytest.raises(ConfigError, match=r"pdu9.*port: expected a UDP port"):
        ApcSnmpDevice("pdu9", {"host": "192.0.2.10", "port": "snmp"})


def test_missing_secret_file_is_a_clear_failed_result(tmp_path: Path) -> None:
    dev = ApcSnmpDevice("pdu1", {"host": "192.0.2.10", "community_file": str(tmp_path / "absent")})
    result = dev.off(["1"])  # fails before any packet is sent
    assert not result.ok
    assert "pdu1 (192.0.2.10:161): off 1: community_file" in result.message and "cannot read" in result.message


def test_importing_the_plugin_does_not_import_pysnmp() -> None:
    code = (
        "import sys, omha_fence_powerstrip, omha_fence_powerstrip.device; "
        "omha_fence_powerstrip.omha_fence_devices(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pysnmp', 'pyasn1', 'pysmi')); "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
