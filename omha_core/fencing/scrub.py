"""Scrubbing credentials out of fence messages: every secret value of the fencing configuration, and a
replacement of each by ``***``.

Device messages (and a ``list``'s target names) can echo what a device was sent; they reach records, logs
and status only through :func:`scrub`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omha_core.errors import ConfigError
from omha_core.secrets import is_secret, read_secret

if TYPE_CHECKING:
    from omha_core.config import Config


def secret_values(config: Config) -> list[str]:
    """Every credential value in the fencing configuration, for scrubbing messages: written in the config
    (also inside a device's ``args``), or read from a ``*_file`` / ``*_env`` option (what a device actually
    sends is what might be echoed back)."""
    values: list[str] = []
    for entry in config.section("fencing").get("devices", []):
        _collect_secrets(entry, values)
    return sorted(set(values), key=len, reverse=True)


def _collect_secrets(options: Mapping[str, Any], values: list[str]) -> None:
    for key, value in options.items():
        if isinstance(value, Mapping):
            _collect_secrets(value, values)
            continue
        base = str(key).removesuffix("_file").removesuffix("_env")
        if not is_secret(base):
            continue
        if key == base:
            values += [str(v) for v in (value if isinstance(value, list) else [value]) if _scalar(v)]
        else:
            try:
                secret = read_secret(options, base)
            except ConfigError:
                continue
            if secret:
                values.append(secret)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and str(value) != ""


def scrub(message: str, secrets: list[str]) -> str:
    """Replace any secret value in ``message`` by ``***``."""
    for s in secrets:
        message = message.replace(s, "***")
    return message
