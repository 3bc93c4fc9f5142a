"""``[openmosix]`` in omha.toml: options, defaults and the messages for wrong values."""

from __future__ import annotations

import shlex
from typing import Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_membership_openmosix.defaults import DEFAULTS


def command_line(value: Any) -> str:
    """A command line, split like a shell would (quotes allowed), with at least a program name."""
    if not isinstance(value, str):
        raise vol.Invalid(f"expected a command line such as 'mosctl whois', got {value!r}")
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise vol.Invalid(f"expected a command line such as 'mosctl whois', got {value!r} ({exc})") from None
    if not argv:
        raise vol.Invalid("expected a command line such as 'mosctl whois', got an empty string")
    return value


def relative_path(value: Any) -> str:
    """A path below each node's root (``var/mosix-ha``); a leading ``/`` is accepted and dropped."""
    path = cv.path(value).strip("/")
    if not path or ".." in path.split("/"):
        raise vol.Invalid(f"expected a directory below each node's root such as 'var/mosix-ha', got {value!r}")
    return path


SCHEMA: dict[Any, Any] = {
    vol.Optional("hpcbase", default=DEFAULTS["hpcbase"]): cv.path,
    vol.Optional("mfsbase", default=DEFAULTS["mfsbase"]): cv.path,
    vol.Optional("varpath", default=DEFAULTS["varpath"]): relative_path,
    vol.Optional("whois", default=DEFAULTS["whois"]): command_line,
    vol.Optional("timeout", default=DEFAULTS["timeout"]): cv.positive_float,
}
