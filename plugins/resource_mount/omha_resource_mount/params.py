"""The ``@mount`` command line: ``DEVICE MOUNTPOINT key=value...`` parsed into a checked :class:`MountSpec`.

Every parameter has a default; a site may change the defaults for all its mounts in ``omha.toml``
(``[agents.mount] kill_grace = 10``) and a cltab entry overrides them for one mount. Anything unknown or
malformed is refused here, before the agent touches the system, with a message that says what to write.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omha_core.errors import ResourceError
from omha_core.params import Validator, check_params, seconds, yes_no

#: every ``key=value`` parameter with its default; the README documents each of them
DEFAULTS: dict[str, str] = {
    "type": "auto",
    "options": "",
    "fsck": "no",
    "mkdir": "no",
    "kill": "yes",
    "kill_grace": "5",
    "lazy": "no",
    "probe": "no",
    "probe_timeout": "5",
}

#: the validators of the parameters that are not free text (the agent's ``params_schema``)
PARAMS: dict[str, Validator] = {
    "fsck": yes_no,
    "mkdir": yes_no,
    "kill": yes_no,
    "kill_grace": seconds(),
    "lazy": yes_no,
    "probe": yes_no,
    "probe_timeout": seconds(),
}
_FSTYPE = re.compile(r"^[A-Za-z0-9_.+-]+$")
#: mount options that would make the source something other than the filesystem ``@mount`` checks for
_UNSUPPORTED_OPTIONS = {"bind", "rbind", "move", "remount"}


@dataclass(frozen=True)
class MountSpec:
    """One mount as the cltab entry describes it, with every default applied."""

    source: str
    target: str
    fstype: str | None  # None: let mount(8) detect it
    options: str
    fsck: bool
    mkdir: bool
    kill: bool
    kill_grace: float
    lazy: bool
    probe: bool
    probe_timeout: float

    @property
    def read_only(self) -> bool:
        """True when the entry asks for a read-only mount (``options=ro,...``)."""
        return "ro" in self.options.split(",")

    def describe(self) -> str:
        """``SOURCE on TARGET`` for messages."""
        return f"{self.source} on {self.target}"


def parse_spec(args: list[str], params: Mapping[str, str], options: Mapping[str, Any]) -> MountSpec:
    """Check the words of an ``@mount`` entry and return the mount they describe.

    :param args: the positional words: exactly ``DEVICE MOUNTPOINT``.
    :param params: the entry's ``key=value`` words.
    :param options: ``[agents.mount]`` from ``omha.toml``: site defaults for the same keys.
    :raises ResourceError: naming the wrong word and what is expected instead.
    """
    if len(args) != 2:
        raise ResourceError(
            f"@mount takes DEVICE MOUNTPOINT [key=value...], got {len(args)} positional word(s) {args!r}; "
            "a device is a path, LABEL=..., UUID=..., or a network source such as server:/export"
        )
    values = dict(DEFAULTS)
    for origin, given in (("omha.toml [agents.mount]", options), ("@mount", params)):
        unknown = sorted(set(given) - set(DEFAULTS))
        if unknown:
            raise ResourceError(
                f"{origin}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(DEFAULTS))}"
            )
        values.update({k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in given.items()})

    source, target = args
    if not source:
        raise ResourceError("@mount: the device is empty")
    if not os.path.isabs(target):
        raise ResourceError(f"@mount: mount point {target!r} is not an absolute path")
    target = os.path.normpath(target)
    if target == "/":
        raise ResourceError("@mount: refusing to manage the root filesystem '/'")

    fstype: str | None = values["type"].strip()
    if fstype in ("", "auto"):
        fstype = None
    elif not _FSTYPE.match(fstype or ""):
        raise ResourceError(f"@mount: type={fstype!r} is not a filesystem type name such as ext4, xfs or nfs")

    mount_options = values["options"].strip()
    if any(ch.isspace() for ch in mount_options):
        raise ResourceError(f"@mount: options={mount_options!r} contains blanks; separate options with commas")
    bad = sorted(_UNSUPPORTED_OPTIONS & set(mount_options.split(",")))
    if bad:
        raise ResourceError(f"@mount: option(s) {', '.join(bad)} are not supported; @mount mounts a filesystem")

    checked = check_params(PARAMS, values, prefix="@mount: ")
    spec = MountSpec(
        source=source,
        target=target,
        fstype=fstype,
        options=mount_options,
        fsck=checked["fsck"],
        mkdir=checked["mkdir"],
        kill=checked["kill"],
        kill_grace=checked["kill_grace"],
        lazy=checked["lazy"],
        probe=checked["probe"],
        probe_timeout=checked["probe_timeout"],
    )
    return spec
