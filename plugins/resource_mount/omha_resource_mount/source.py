"""What to mount: a device path, a ``LABEL=``/``UUID=`` tag, or a network source, and how to recognise it.

A tag is resolved to one device node before mounting (a fresh blkid(8) probe; ``/dev/disk/by-*`` only when
blkid cannot answer), so that an ambiguous label is refused instead of mounting whichever disk comes first,
and so that the agent knows which device to look for in mountinfo afterwards. A mount is recognised as ours
by device number, canonical path, loop backing file or (network sources) the source string itself.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import stat
import subprocess

from omha_core.errors import ResourceError
from omha_resource_mount.mountinfo import MountEntry

#: tag -> the /dev/disk directory where udev keeps a symlink per value
TAGS: dict[str, str] = {
    "LABEL": "by-label",
    "UUID": "by-uuid",
    "PARTLABEL": "by-partlabel",
    "PARTUUID": "by-partuuid",
}
#: filesystem types that mount a remote source rather than a local device
NETWORK_TYPES = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "fuse.sshfs"})
_HOST_PATH = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):/")  # server:/export, [2001:db8::1]:/export
_UDEV_SAFE = re.compile(r"[0-9A-Za-z#+\-.:=@_]")
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
#: seconds a blkid probe of every block device may take
BLKID_TIMEOUT = 10.0

log = logging.getLogger("omha.mount")


def tag_of(source: str) -> tuple[str, str] | None:
    """``("LABEL", "www")`` for ``LABEL=www``; None when the source is not a tag."""
    name, sep, value = source.partition("=")
    if sep and name.upper() in TAGS:
        return name.upper(), value.strip("\"'")
    return None


def is_network(source: str, fstype: str | None) -> bool:
    """True for ``server:/export``, ``//server/share`` or any source of a network filesystem type."""
    if fstype in NETWORK_TYPES:
        return True
    return source.startswith("//") or bool(_HOST_PATH.match(source))


def udev_encode(value: str) -> str:
    r"""A tag value as udev spells it in /dev/disk/by-*: unsafe characters become ``\xNN``."""
    out = []
    for ch in value:
        if _UDEV_SAFE.match(ch):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def _blkid_devices(name: str, value: str) -> list[str] | None:
    """Every device carrying the tag, probed now; None when blkid is missing or does not answer."""
    blkid = shutil.which("blkid") or next((p for d in _SBIN if os.access(p := f"{d}/blkid", os.X_OK)), None)
    if blkid is None:
        return None
    try:
        # -c /dev/null: probe the devices now instead of trusting a cache that may predate a takeover
        proc = subprocess.run(
            [blkid, "-c", "/dev/null", "-o", "device", "-t", f"{name}={value}"],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            timeout=BLKID_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        log.warning("blkid did not answer within %gs (a hung disk?)", BLKID_TIMEOUT)
        return None
    if proc.returncode not in (0, 2):
        log.warning("blkid failed: %s", proc.stderr.strip())
        return None
    return sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})


def resolve_device(source: str) -> str:
    """The device node (or image file) to mount for ``source``; raise when this node has none.

    A tag is resolved by a fresh blkid probe, which sees every device carrying it; only when blkid is missing
    or hangs does the udev symlink in /dev/disk/by-* decide (it names one device even when two carry the tag).

    :raises ResourceError: "missing device" for a path that does not exist or a tag no device carries, and
        "ambiguous" when several devices carry the tag.
    """
    tag = tag_of(source)
    if tag is None:
        if not os.path.exists(source):
            raise ResourceError(f"missing device: {source} does not exist on this node")
        mode = os.stat(source).st_mode
        if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
            raise ResourceError(f"{source} is neither a block device nor a filesystem image file")
        return os.path.realpath(source)
    name, value = tag
    if not value:
        raise ResourceError(f"{source!r}: the {name} is empty")
    devices = _blkid_devices(name, value)
    if devices is None:
        link = os.path.join("/dev/disk", TAGS[name], udev_encode(value))
        if os.path.exists(link):
            return os.path.realpath(link)
        raise ResourceError(
            f"missing device: no {link} on this node, and blkid (util-linux) could not probe for {name}={value}"
        )
    if not devices:
        raise ResourceError(f"missing device: no device with {name}={value} on this node (probed with blkid)")
    if len(devices) > 1:
        raise ResourceError(f"ambiguous {name}={value}: carried by {', '.join(devices)}; refusing to guess")
    return devices[0]


def _loop_backing_file(source: str) -> str | None:
    name = os.path.basename(source)
    if not (source.startswith("/dev/") and name.startswith("loop")):
        return None
    try:
        with open(f"/sys/block/{name}/loop/backing_file", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _norm_network(source: str) -> str:
    return source.rstrip("/") if len(source.rstrip("/")) > 0 else source


def entry_matches(entry: MountEntry, source: str, device: str | None) -> bool:
    """Is ``entry`` a mount of our source?

    :param source: the source as the cltab entry wrote it.
    :param device: the resolved device node or image file, or None for a network source.
    """
    if device is None:
        return _norm_network(entry.source) == _norm_network(source)
    if entry.source in (source, device):
        return True
    if entry.source.startswith("/") and os.path.realpath(entry.source) == device:
        return True
    try:
        st = os.stat(device)
    except OSError:
        return False
    if stat.S_ISBLK(st.st_mode):
        return (entry.major, entry.minor) == (os.major(st.st_rdev), os.minor(st.st_rdev))
    # an image file mounted through a loop device
    return _loop_backing_file(entry.source) == device


def device_in_use(device: str) -> bool:
    """True when ``device`` is a block device the kernel holds: mounted in any mount namespace of this node,
    or opened exclusively (``O_EXCL``) by someone else. False for anything else (an image file, a device that
    vanished or that this process may not open): the caller has nothing more to learn from it then."""
    try:
        if not stat.S_ISBLK(os.stat(device).st_mode):
            return False
        fd = os.open(device, os.O_RDONLY | os.O_EXCL | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        return exc.errno == errno.EBUSY
    os.close(fd)
    return False


def _kernel_modules() -> set[str]:
    release = os.uname().release
    names: set[str] = set()
    for index in ("modules.dep", "modules.builtin"):
        try:
            with open(f"/lib/modules/{release}/{index}", encoding="utf-8") as fh:
                for line in fh:
                    module = os.path.basename(line.split(":", 1)[0].strip())
                    names.add(module.split(".ko", 1)[0].replace("-", "_"))
        except OSError:
            continue
    return names


def mount_helper(fstype: str) -> str | None:
    """The ``mount.TYPE`` helper program mount(8) would run for ``fstype``, if installed."""
    for directory in _SBIN:
        path = f"{directory}/mount.{fstype}"
        if os.access(path, os.X_OK):
            return path
    return shutil.which(f"mount.{fstype}")


def fstype_available(fstype: str) -> bool:
    """True when this node can mount ``fstype``: the kernel knows it, can load a module for it, or a
    ``mount.TYPE`` helper exists."""
    try:
        with open("/proc/filesystems", encoding="utf-8") as fh:
            if fstype in {line.split()[-1] for line in fh if line.strip()}:
                return True
    except OSError:
        pass
    if mount_helper(fstype) is not None or fstype.replace("-", "_") in _kernel_modules():
        return True
    return fstype.startswith("fuse.") and mount_helper("fuse") is not None
