"""The ``[etcd]`` section of ``omha.toml``: its schema and the resolved options a client needs.

Example::

    [cluster]
    store = "etcd"
    membership = "etcd"

    [etcd]
    endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]
    prefix = "/omha/prod"            # default: /omha/<cluster name>
    ca_file = "/etc/omha/etcd-ca.pem"
    cert_file = "/etc/omha/etcd-client.pem"
    key_file = "/etc/omha/etcd-client.key"
    username = "omha"
    password_file = "/etc/omha/etcd.password"   # or password_env = "OMHA_ETCD_PASSWORD"
    timeout = 1.0                    # seconds per request and endpoint

This module is imported when the plugin loads (``omha plugins``), so it holds nothing heavier than voluptuous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.config import read_secret
from omha_core.errors import ConfigError

if TYPE_CHECKING:
    from omha_core.config import Config

#: etcd's own default client URL, used when ``endpoints`` is not given
DEFAULT_ENDPOINT = "http://127.0.0.1:2379"
#: the shortest lease etcd grants with its default timings (1.5 election timeouts, rounded up)
MIN_TTL = 2


def endpoint_url(value: Any) -> str:
    """An etcd client URL: ``http://host:port`` or ``https://host:port``, without a path."""
    if not isinstance(value, str):
        raise vol.Invalid(f"expected an etcd client URL like 'https://10.0.0.1:2379', got {value!r}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise vol.Invalid(f"expected an etcd client URL like 'https://10.0.0.1:2379', got {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise vol.Invalid(f"expected an etcd client URL starting with http:// or https://, got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise vol.Invalid(f"expected an etcd client URL without path, query or user name, got {value!r}")
    if port is None:
        raise vol.Invalid(f"expected an etcd client URL with a port (etcd listens on 2379), got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def endpoint_list(value: Any) -> list[str]:
    """One URL or a non-empty list of URLs, always returned as a list."""
    if isinstance(value, str):
        return [endpoint_url(value)]
    if not isinstance(value, list) or not value:
        raise vol.Invalid(f"expected a list of etcd client URLs like ['https://10.0.0.1:2379'], got {value!r}")
    return [endpoint_url(v) for v in value]


def key_prefix(value: Any) -> str:
    """A key prefix like ``/omha/prod``: starts with ``/``, no trailing ``/``."""
    if not isinstance(value, str) or not value.startswith("/") or value.rstrip("/") == "" or "\x00" in value:
        raise vol.Invalid(f"expected a key prefix starting with '/', like '/omha/prod', got {value!r}")
    return value.rstrip("/")


def _coherent(section: dict[str, Any]) -> dict[str, Any]:
    """Cross-option rules: a client certificate needs its key, a password needs a user name."""
    if bool(section.get("cert_file")) != bool(section.get("key_file")):
        raise vol.Invalid("cert_file and key_file go together (a client certificate and its private key)")
    secrets = [k for k in ("password", "password_file", "password_env") if section.get(k)]
    if len(secrets) > 1:
        raise vol.Invalid(f"give the password one way only, not {' and '.join(secrets)}")
    if secrets and not section.get("username"):
        raise vol.Invalid(f"{secrets[0]} is set but username is missing")
    if section.get("username") and not secrets:
        raise vol.Invalid("username is set but no password: add password_file (or password_env)")
    return section


SCHEMA = vol.All(
    vol.Schema(
        {
            vol.Optional("endpoints", default=[DEFAULT_ENDPOINT]): endpoint_list,
            vol.Optional("prefix"): key_prefix,
            vol.Optional("ca_file"): cv.path,
            vol.Optional("cert_file"): cv.path,
            vol.Optional("key_file"): cv.path,
            vol.Optional("username"): cv.string,
            vol.Optional("password"): cv.string,
            vol.Optional("password_file"): cv.path,
            vol.Optional("password_env"): cv.string,
            vol.Optional("timeout", default=1.0): cv.positive_float,
        }
    ),
    _coherent,
)


@dataclass(frozen=True)
class EtcdOptions:
    """Resolved ``[etcd]`` options. The password is kept out of ``repr`` so that it never reaches a log."""

    endpoints: tuple[str, ...]
    prefix: str
    ttl: int
    timeout: float = 1.0
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def lease_ttl(dead_after: float) -> int:
    """The lease TTL for ``[timing] dead_after`` seconds: rounded up to whole seconds, at least ``MIN_TTL``."""
    return max(MIN_TTL, math.ceil(dead_after))


def options_from_config(config: Config) -> EtcdOptions:
    """Resolve ``[etcd]`` of a validated config (defaults filled, the password read from its file or variable)."""
    section = dict(config.section("etcd"))
    if not section.get("endpoints"):
        try:
            section = SCHEMA(section)
        except vol.Invalid as exc:
            raise ConfigError(f"{config.path}: [etcd]: {exc.msg}") from None
    password = read_secret(section, "password") if section.get("username") else None
    prefix = section.get("prefix") or f"/omha/{config.cluster_name}"
    return EtcdOptions(
        endpoints=tuple(section["endpoints"]),
        prefix=prefix,
        ttl=lease_ttl(float(config.timing.get("dead_after", 2.0))),
        timeout=float(section.get("timeout", 1.0)),
        ca_file=section.get("ca_file"),
        cert_file=section.get("cert_file"),
        key_file=section.get("key_file"),
        username=section.get("username"),
        password=password,
    )
