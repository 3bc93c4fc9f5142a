"""Small named validators for ``omha.toml`` (used as ``cv``), after Home Assistant's config_validation.

Each validator's message says what to type instead, so that ``humanize`` can print
``omha.toml: [timing] dead_after: expected a positive number of seconds, got -1``.
"""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol

from omha_core.secrets import hide_value as hide_value
from omha_core.secrets import secret_path

_IDENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def identifier(value: Any) -> str:
    """A name: letters, digits, ``_``, ``.``, ``-`` (node names, device names, group names)."""
    if isinstance(value, str) and _IDENT.match(value):
        return value
    raise vol.Invalid(f"expected a name of letters, digits, '_', '.' or '-', got {value!r}")


def string(value: Any) -> str:
    """A string; numbers are accepted and converted (outlet ``1`` and ``"1"`` are the same)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise vol.Invalid(f"expected a string, got {value!r}")
    return str(value)


def string_or_list(value: Any) -> list[str]:
    """One string or a list of strings, always returned as a list (a node on several outlets)."""
    if isinstance(value, list):
        if not value:
            raise vol.Invalid("expected at least one value")
        return [string(v) for v in value]
    return [string(value)]


def positive_float(value: Any) -> float:
    """A number of seconds greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise vol.Invalid(f"expected a positive number of seconds, got {value!r}")
    return float(value)


def non_negative_float(value: Any) -> float:
    """A number of seconds, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise vol.Invalid(f"expected a number of seconds, zero or more, got {value!r}")
    return float(value)


def positive_int(value: Any) -> int:
    """A whole number greater than zero."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise vol.Invalid(f"expected a whole number greater than zero, got {value!r}")
    return value


def non_negative_int(value: Any) -> int:
    """A whole number, zero or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise vol.Invalid(f"expected a whole number, zero or more, got {value!r}")
    return value


def path(value: Any) -> str:
    """A filesystem path (not checked for existence)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise vol.Invalid(f"expected a file or directory path, got {value!r}")
    return value


def boolean(value: Any) -> bool:
    """true or false."""
    if isinstance(value, bool):
        return value
    raise vol.Invalid(f"expected true or false, got {value!r}")


def one_of(*choices: str) -> Any:
    """One of the given strings, with a message listing them."""
    return vol.In(choices, msg=f"expected one of {', '.join(repr(c) for c in choices)}")


def grace_list(value: Any) -> list[float]:
    """A list of non-negative delays (seconds) between SIGINT, SIGTERM and SIGKILL."""
    if not isinstance(value, list) or len(value) != 3:
        raise vol.Invalid(f"expected a list of 3 delays [int, term, kill] in seconds, got {value!r}")
    return [non_negative_float(v) for v in value]


def humanize(error: vol.Invalid, filename: str) -> list[str]:
    """Turn a voluptuous error (possibly multiple) into ``FILE: [section] key: message`` lines.

    A message about a secret option (a key named ``*password``, ``*community``, ... anywhere in its path) never
    shows the value: validators echo what they got (``expected a string, got [...]``), so for secrets that
    part is replaced by a note.
    """
    errors = error.errors if isinstance(error, vol.MultipleInvalid) else [error]
    out = []
    for err in errors:
        keys = [str(p) for p in err.path]
        where = ""
        if len(keys) > 1:
            where = f"[{'.'.join(keys[:-1])}] {keys[-1]}"
        elif keys:
            where = keys[0]
        msg = err.msg
        if msg == "extra keys not allowed":
            msg = "unknown key (check the spelling, or install the plugin that provides it)"
        elif msg == "required key not provided":
            msg = "required key is missing"
        elif secret_path(keys):
            msg = hide_value(msg)
        out.append(f"{filename}: {where}: {msg}" if where else f"{filename}: {msg}")
    return sorted(set(out))


def listen_address(value: Any) -> tuple[str, int]:
    """``HOST:PORT`` to listen on (``127.0.0.1:9677``, ``[::1]:9677``); returns (host, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise vol.Invalid(f"expected HOST:PORT such as '127.0.0.1:9677', got {value!r}")
    host, _, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise vol.Invalid(
            f"expected HOST:PORT with a port 0-65535 (0: any free port), such as '127.0.0.1:9677', got {value!r}"
        )
    return host, int(port)
