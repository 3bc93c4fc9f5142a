"""The ``[openmosix]`` options' defaults, apart from :mod:`.layout` so that the configuration schema (which every
``omha`` command validates against) does not import the layout and the /proc/hpc reader (issue 19, CLI
start-up)."""

from __future__ import annotations

from typing import Any

DEFAULTS: dict[str, Any] = {
    "hpcbase": "/proc/hpc",
    "mfsbase": "/mfs",
    "varpath": "var/mosix-ha",
    "whois": "mosctl whois",
    "timeout": 60.0,
}
