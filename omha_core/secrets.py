"""Credentials in the configuration, in one place: which option names hold one, reading one from the config,
a file or the environment, and keeping them out of everything shown (printed config, messages, commands).

An option is a secret when its name ends in one of :data:`SECRET_SUFFIXES` (``password``, ``community``,
``token``...); ``<name>_file`` and ``<name>_env`` give its value indirectly. Nothing here imports the rest of
the core but :mod:`omha_core.errors`, so that the config, its validators, the init and the fencing can all
use it without an import cycle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ConfigError

#: option names whose values are secrets: never logged, printed or put in status
SECRET_SUFFIXES: tuple[str, ...] = ("password", "community", "secret", "passwd", "token", "key")
#: what a secret value is replaced by wherever it would be shown
MASK = "***"


def is_secret(key: str) -> bool:
    """True when an option name holds a credential."""
    low = key.lower()
    return any(low.endswith(s) for s in SECRET_SUFFIXES) and not low.endswith("_file")


def redact(value: Any) -> Any:
    """A copy of ``value`` with every secret option replaced by ``"***"``."""
    if isinstance(value, Mapping):
        return {k: (MASK if is_secret(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def read_secret(options: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """A secret given as ``key`` directly, ``key_file`` (path to a file) or ``key_env`` (env variable)."""
    if options.get(f"{key}_file"):
        try:
            with open(str(options[f"{key}_file"]), encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ConfigError(f"{key}_file {options[f'{key}_file']}: cannot read: {exc.strerror}") from None
    if options.get(f"{key}_env"):
        name = str(options[f"{key}_env"])
        if name not in os.environ:
            raise ConfigError(f"{key}_env: environment variable {name} is not set")
        return os.environ[name]
    value = options.get(key)
    return str(value) if value is not None else default
