"""The ``[etcd]`` section and the plugin's registration (no etcd needed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from omha_membership_etcd.options import lease_ttl, options_from_config

from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.plugins import OmhaPluginManager, registry


def test_defaults(plugin_manager: OmhaPluginManager) -> None:
    config = validate_config(
        {"cluster": {"name": "prod", "store": "etcd", "membership": "etcd"}}, "omha.toml", plugin_manager
    )
    opts = options_from_config(config)
    assert opts.endpoints == ("http://127.0.0.1:2379",)
    assert opts.prefix == "/omha/prod"
    assert opts.ttl == 2 and opts.timeout == 1.0
    assert opts.username is None and opts.password is None


def test_explicit_options(plugin_manager: OmhaPluginManager, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    raw = {
        "timing": {"dead_after": 4.5},
        "etcd": {
            "endpoints": ["https://10.0.0.1:2379/", "https://[2001:db8::1]:2379"],
            "prefix": "/clusters/a/",
            "ca_file": "/etc/omha/ca.pem",
            "cert_file": "/etc/omha/c.pem",
            "key_file": "/etc/omha/c.key",
            "username": "omha",
            "password_file": str(secret),
            "timeout": 0.5,
        },
    }
    opts = options_from_config(validate_config(raw, "omha.toml", plugin_manager))
    assert opts.endpoints == ("https://10.0.0.1:2379", "https://[2001:db8::1]:2379")
    assert opts.prefix == "/clusters/a"
    assert opts.ttl == 5
    assert opts.password == "hunter2"
    assert "hunter2" not in repr(opts)


@pytest.mark.parametrize(
    ("etcd", "expected"),
    [
        ({"endpoints": ["127.0.0.1:2379"]}, "[etcd] endpoints: expected an etcd client URL starting with http://"),
        ({"endpoints": ["http://127.0.0.1"]}, "with a port"),
        ({"endpoints": ["http://127.0.0.1:2379/v3"]}, "without path"),
        ({"endpoints": []}, "expected a list of etcd client URLs"),
        ({"prefix": "omha"}, "[etcd] prefix: expected a key prefix starting with '/'"),
        ({"cert_file": "/c.pem"}, "cert_file and key_file go together"),
        ({"username": "omha"}, "username is set but no password"),
        ({"password_file": "/pw"}, "password_file is set but username is missing"),
        ({"username": "u", "password": "p", "password_file": "/pw"}, "give the password one way only"),
        ({"timeout": 0}, "[etcd] timeout: expected a positive number of seconds"),
        ({"endpoint": "http://x:1"}, "[etcd] endpoint: unknown key"),
    ],
)
def test_bad_options_are_named(plugin_manager: OmhaPluginManager, etcd: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"etcd": etcd}, "omha.toml", plugin_manager)
    assert expected in str(info.value)


def test_a_password_in_the_file_is_redacted(plugin_manager: OmhaPluginManager) -> None:
    from omha_core.config import redact

    config = validate_config({"etcd": {"username": "u", "password": "hunter2"}}, "omha.toml", plugin_manager)
    assert "hunter2" not in json.dumps(redact(dict(config.data)))


@pytest.mark.parametrize(("dead_after", "ttl"), [(0.5, 2), (2.0, 2), (2.1, 3), (10.0, 10)])
def test_lease_ttl_is_dead_after_rounded_up_at_least_2(dead_after: float, ttl: int) -> None:
    assert lease_ttl(dead_after) == ttl


def test_registered_as_etcd_store_and_membership(plugin_manager: OmhaPluginManager) -> None:
    stores = registry(plugin_manager, "omha_store_backends")
    memberships = registry(plugin_manager, "omha_membership_backends")
    assert stores["etcd"][1] == "membership_etcd" and memberships["etcd"][1] == "membership_etcd"
    config = validate_config({"cluster": {"store": "etcd"}}, "omha.toml", plugin_manager)
    store = stores["etcd"][0](config)
    membership = memberships["etcd"][0](config, store)
    assert type(store).__name__ == "EtcdStore" and type(membership).__name__ == "EtcdMembership"
    store.close()


def test_loading_the_plugin_does_not_load_the_client() -> None:
    """``omha plugins`` loads every plugin: the HTTP and TLS client must wait until a backend is built."""
    code = (
        "import sys, omha_membership_etcd as p; p.omha_config_schema(); p.omha_store_backends();"
        "print(sorted(m for m in ('http.client', 'ssl', 'omha_membership_etcd.client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "[]"
