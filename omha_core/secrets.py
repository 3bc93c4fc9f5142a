"""Credentials in the configuration, in one place: which option names hold one, reading one from the config,
a file or the environment, and keeping them out of everything shown: the printed configuration
(:func:`redact`), validation messages (:func:`hide_value`), command lines in status (:func:`redact_command`)
and device messages (:func:`secret_values` and :func:`scrub`).

An option is a secret when its name ends in one of :data:`SECRET_SUFFIXES` (``password``, ``community``,
``token``...); ``<name>_file`` and ``<name>_env`` give its value indirectly. Nothing here imports the rest of
the core but :mod:`omha_core.errors`, so that the config, its validators, the init and the fencing can all
use it without an import cycle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omha_core.errors import ConfigError

if TYPE_CHECKING:
    from omha_core.config import Config

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


def secret_path(keys: Sequence[str]) -> bool:
    """True when a config path (section, key, ...) goes through a secret option."""
    return any(is_secret(k) for k in keys)


def hide_value(message: str) -> str:
    """``message`` without the value it quotes: what comes after ``got`` (the validators' wording) is cut; a
    message that quotes anything in another way (quotes, brackets) is replaced as a whole."""
    note = "(the value is not shown: it is a secret)"
    head, sep, _ = message.partition(", got ")
    if sep:
        return f"{head} {note}"
    if any(c in message for c in "'\"[]{}()<>=:"):
        return f"invalid value {note}"
    return f"{message} {note}"


#: a ``key=value`` word of a command line (the value may be quoted)
_PARAM = re.compile(r"""(?<!\S)([\w.\-]+)=("[^"]*"|'[^']*'|\S*)""")


def redact_command(command: str) -> str:
    """``command`` with the value of every secret ``key=value`` word replaced by ``***``."""
    return _PARAM.sub(lambda m: f"{m[1]}={MASK}" if is_secret(m[1]) else m[0], command)


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


def scrub(message: str, secrets: Sequence[str]) -> str:
    """Replace any secret value in ``message`` by ``***`` (longest first: :func:`secret_values` sorts them so)."""
    for s in secrets:
        message = message.replace(s, MASK)
    return message
