"""Running mount(8), umount(8) and fsck(8), and turning their failures into clear errors.

Why the commands rather than the mount(2)/umount2(2) system calls through ctypes: mount(8) runs the
``mount.nfs``/``mount.cifs`` helpers network sources need (address resolution, protocol negotiation),
splits an option string such as ``noatime,data=ordered`` into kernel flags and filesystem data, and sets up
a loop device for an image file; umount(8) runs the matching helpers (NFS unmount notification) and frees that
loop device. Re-implementing those is where bugs would live. The price is a fork and exec per call (a few
milliseconds, see bench/README.md) and parsing English messages, hence ``LC_ALL=C``. The exit status is never
trusted on its own: the caller verifies the outcome in /proc/self/mountinfo.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

from omha_core.errors import ResourceError

log = logging.getLogger("omha.mount")

_ENV = {**os.environ, "LC_ALL": "C", "LANG": "C"}


@dataclass(frozen=True)
class UmountResult:
    """What one umount(8) call said."""

    ok: bool
    busy: bool
    message: str


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=_ENV, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError:
        raise ResourceError(f"{argv[0]} is not installed on this node (package util-linux)") from None


def _first_line(text: str) -> str:
    """mount(8)'s message without its "dmesg(1) may have more information" postscript."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and "dmesg(1)" not in line]
    return " ".join(lines) or "no message"


def _permission_problem(text: str) -> bool:
    low = text.lower()
    return any(key in low for key in ("permission denied", "must be superuser", "only root", "operation not permitted"))


def mount(device: str, target: str, fstype: str | None, options: str) -> None:
    """Mount ``device`` on ``target``; raise a :class:`ResourceError` that says which problem it was."""
    argv = ["mount"]
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    argv += ["--", device, target]
    proc = _run(argv)
    if proc.returncode == 0:
        return
    said = _first_line(proc.stderr + proc.stdout)
    low = said.lower()
    where = f"{device} on {target}"
    if _permission_problem(said):
        raise ResourceError(
            f"permission denied mounting {where}: {said} (the agent must run as root with CAP_SYS_ADMIN)"
        )
    if "unknown filesystem type" in low:
        raise ResourceError(f"unknown filesystem type mounting {where}: {said}")
    if "does not exist" in low or "no such file" in low:
        raise ResourceError(f"missing device or mount point mounting {where}: {said}")
    if "already mounted" in low or "busy" in low:
        raise ResourceError(f"busy: cannot mount {where}: {said}")
    if "wrong fs type" in low or "bad superblock" in low:
        raise ResourceError(
            f"cannot mount {where}: {said} (check type={fstype or 'auto'} and options={options or '(none)'})"
        )
    raise ResourceError(f"cannot mount {where}: {said}")


def umount(target: str, lazy: bool = False) -> UmountResult:
    """Unmount the mount on top of ``target``; report busy separately from other failures."""
    proc = _run(["umount", "-l", "--", target] if lazy else ["umount", "--", target])
    said = _first_line(proc.stderr + proc.stdout)
    if proc.returncode == 0:
        return UmountResult(True, False, "")
    if _permission_problem(said):
        raise ResourceError(
            f"permission denied unmounting {target}: {said} (the agent must run as root with CAP_SYS_ADMIN)"
        )
    return UmountResult(False, "busy" in said.lower(), said)


def fsck(device: str, fstype: str | None) -> None:
    """Check and repair what is safe to repair unattended (``fsck -a``); raise when errors remain."""
    argv = ["fsck", "-T", "-a"]
    if fstype:
        argv += ["-t", fstype]
    argv.append(device)
    proc = _run(argv)
    code = proc.returncode
    output = (proc.stdout + proc.stderr).strip()
    tail = " | ".join(output.splitlines()[-3:])
    if code in (0, 1, 2):
        if code:
            log.warning("fsck %s corrected errors: %s", device, tail)
        return
    if code & 4:
        raise ResourceError(f"fsck found errors on {device} it could not fix unattended; repair by hand: {tail}")
    raise ResourceError(f"fsck of {device} failed (exit status {code}): {tail}")
