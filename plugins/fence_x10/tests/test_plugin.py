"""The plugin as omha sees it: registration through the entry point, option and node map validation in
``omha.toml``, and a cheap import (pyserial only when a device acts)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.fence_devices import FenceDevice
from omha_core.plugins import get_plugin_manager, registry


def test_both_kinds_are_registered_by_the_fence_x10_plugin() -> None:
    kinds = registry(get_plugin_manager(), "omha_fence_devices")
    for kind in ("x10_cm11a", "x10_cm17a"):
        cls, plugin = kinds[kind]
        assert plugin == "fence_x10" and cls.kind == kind  # the hook names them without importing them
        assert issubclass(cls, FenceDevice)
        assert isinstance(cls.schema, dict) and "port" in [str(k) for k in cls.schema]


def _config(**device: object) -> dict[str, object]:
    entry = {"name": "plugs", "kind": "x10_cm11a", "port": "/dev/ttyUSB0", "nodes": {"n1": "a01"}, **device}
    return {"fencing": {"devices": [entry]}}


def test_valid_device_gets_defaults_and_normalised_addresses() -> None:
    (dev,) = validate_config(_config(nodes={"n1": "a01", "n2": ["B2", "b3"]})).section("fencing")["devices"]
    assert dev["nodes"] == {"n1": ["A1"], "n2": ["B2", "B3"]}
    assert (dev["repeat"], dev["reply_timeout"], dev["verify"], dev["timeout"]) == (3, 3.0, False, 20.0)
    (rf,) = validate_config(_config(kind="x10_cm17a")).section("fencing")["devices"]
    assert rf["repeat"] == 3 and "reply_timeout" not in rf


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"nodes": {"n1": "Q1"}}, "[fencing.devices] plugs: [nodes] n1: bad X10 address 'Q1': house code 'Q' is not"),
        ({"nodes": {"n1": ["A1", "C17"]}}, "unit 17 is not in 1-16"),
        ({"repeat": 0}, "repeat: expected a whole number greater than zero"),
        ({"port": None}, "port: expected a file or directory path"),
        ({"verify": "yes"}, "verify: expected true or false"),
    ],
)
def test_bad_options_are_refused_when_the_config_is_loaded(change: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(_config(**change))
    assert says in str(info.value)


def test_missing_port_is_named() -> None:
    cfg = _config()
    del cfg["fencing"]["devices"][0]["port"]  # type: ignore[index]
    with pytest.raises(ConfigError, match="port: required key is missing"):
        validate_config(cfg)


def test_importing_the_plugin_does_not_import_pyserial() -> None:
    code = (
        "import sys, omha_fence_x10; kinds = omha_fence_x10.omha_fence_devices(); "
        "print(sorted(kinds), 'serial' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['x10_cm11a', 'x10_cm17a'] False"
