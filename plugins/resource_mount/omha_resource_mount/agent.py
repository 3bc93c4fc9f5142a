"""``@mount DEVICE MOUNTPOINT [key=value...]``: a filesystem that is mounted where its group runs.

The agent's promises, each verified in /proc/self/mountinfo rather than taken from a command's exit status:
after ``acquire`` our source is mounted on the mount point with the expected type, writable unless ``ro`` was
asked; after ``release`` it is not mounted there any more, whatever was using it, nor anywhere else on this
node (release fails, loudly, rather than claim success while another node could not safely mount it: a mount
stacked on ours, a bind mount of it, and for a block device any mount namespace still holding it are named
in the error, never unmounted); ``monitor`` fails when either stops being true behind omha's back; ``check``
fails on a node that cannot see the device.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from omha_core.errors import ResourceError
from omha_core.resources import ResourceAgent
from omha_resource_mount import commands
from omha_resource_mount.mountinfo import MountEntry, mounts_beneath, read_mounts, top_mount_at
from omha_resource_mount.params import DEFAULTS, PARAMS, MountSpec, parse_spec
from omha_resource_mount.probe import write_probe
from omha_resource_mount.source import (
    TAGS,
    device_in_use,
    entry_matches,
    fstype_available,
    is_network,
    mount_helper,
    resolve_device,
    tag_of,
)
from omha_resource_mount.users import close_all, find_users, stop_users

log = logging.getLogger("omha.mount")

#: umount attempts in one release (each may stop the processes found using the mount first)
RELEASE_ROUNDS = 4
#: seconds release waits for the kernel to let go of a block device once it is unmounted
EXCLUSIVE_WAIT = 1.0
#: types the kernel reports under another name than the one mount(8) was given
_SAME_TYPE = {"nfs": {"nfs4"}, "smb3": {"cifs"}, "smbfs": {"cifs"}}


def _is_tag_word(word: str) -> bool:
    key = word.partition("=")[0]
    return key.upper() in TAGS


class MountAgent(ResourceAgent):
    """``@mount DEVICE MOUNTPOINT type=ext4 options=noatime fsck=yes mkdir=yes ...`` (see the README)."""

    monitor_interval = 2.0
    system_commands = {"mount": "mount", "umount": "mount", "blkid": "util-linux", "fsck": "util-linux"}
    option_names = frozenset(DEFAULTS)  # site defaults for the same keys as the cltab line
    params_schema = PARAMS

    def __init__(self, args: list[str], params: dict[str, str], options: Mapping[str, Any]) -> None:
        # The generic split puts every word with '=' into params: a LABEL=/UUID= device belongs in args.
        tags = {k: v for k, v in params.items() if k.upper() in TAGS}
        if tags and len(args) < 2:
            args = [f"{k}={v}" for k, v in tags.items()] + list(args)
            params = {k: v for k, v in params.items() if k not in tags}
        super().__init__(args, params, options)
        self._spec: MountSpec | None = None
        self._device: str | None = None  # resolved device node or image file, cached from acquire

    @classmethod
    def positional(cls, word: str) -> bool:
        """``LABEL=``/``UUID=`` words are devices, not ``key=value`` parameters."""
        return "=" not in word or _is_tag_word(word)

    # -- what the entry asks for ------------------------------------------------------------------------

    @property
    def spec(self) -> MountSpec:
        """The checked parameters (raises :class:`ResourceError` when they are malformed)."""
        if self._spec is None:
            spec = parse_spec(self.args, self.params, self.options)
            network = is_network(spec.source, spec.fstype)
            if network and spec.fsck:
                raise ResourceError(f"@mount: fsck=yes makes no sense for the network source {spec.source}")
            if not network and tag_of(spec.source) is None and not os.path.isabs(spec.source):
                raise ResourceError(
                    f"@mount: device {spec.source!r} is not an absolute path, LABEL=, UUID=, PARTLABEL=, "
                    "PARTUUID= or a network source (server:/export, //server/share)"
                )
            self._spec = spec
        return self._spec

    @property
    def network(self) -> bool:
        """True when the source is a network filesystem (nothing to resolve, fsck or find in /dev)."""
        return is_network(self.spec.source, self.spec.fstype)

    def target(self) -> str:
        """The mount point as the kernel spells it in mountinfo. Only the parent is canonicalised: looking
        at the mount point itself would stat the mounted filesystem, which hangs on a dead NFS server."""
        parent, name = os.path.split(self.spec.target)
        return os.path.join(os.path.realpath(parent), name)

    def device(self) -> str | None:
        """The device node or image file to mount (resolving a tag once), None for a network source."""
        if self.network:
            return None
        if self._device is None:
            self._device = resolve_device(self.spec.source)
        return self._device

    def _check_fstype(self) -> None:
        fstype = self.spec.fstype
        if fstype and not fstype_available(fstype):
            raise ResourceError(
                f"unknown filesystem type {fstype!r}: this node's kernel does not list it in /proc/filesystems, "
                f"has no module for it and no mount.{fstype} helper; expected e.g. type=ext4, xfs or nfs"
            )

    def _type_ok(self, entry: MountEntry) -> bool:
        wanted = self.spec.fstype
        return wanted is None or entry.fstype == wanted or entry.fstype in _SAME_TYPE.get(wanted, set())

    def _problem(self, entry: MountEntry) -> str | None:
        """Why our mount ``entry`` is not what the entry asks for, or None when it is."""
        if not self._type_ok(entry):
            return f"it is mounted as {entry.fstype}, not type={self.spec.fstype}"
        if entry.read_only and not self.spec.read_only:
            return "it is read-only (device write-protected, or the filesystem remounted itself read-only after errors)"
        return None

    def _is_ours(self, entry: MountEntry, device: str | None, unresolved: bool) -> bool:
        if unresolved:
            # our device vanished (disk pulled, label gone): the mount point is ours by configuration, so a
            # mount of the configured type there is what acquire left behind
            return self._type_ok(entry)
        return entry_matches(entry, self.spec.source, device)

    # -- the ResourceAgent contract ------------------------------------------------------------------

    def validate(self) -> None:
        """Refuse malformed parameters before anything runs."""
        _ = self.spec

    def check(self) -> None:
        """Fitness: this node has the device, the filesystem type and the mount point's parent."""
        spec = self.spec
        parent = os.path.dirname(spec.target)
        if not os.path.isdir(parent):
            raise ResourceError(f"@mount: the mount point's parent directory {parent} does not exist on this node")
        if not spec.mkdir and not os.path.isdir(spec.target):
            raise ResourceError(
                f"@mount: mount point {spec.target} does not exist on this node; create it or add mkdir=yes"
            )
        self._check_fstype()
        if self.network:
            kind = spec.fstype or ("cifs" if spec.source.startswith("//") else "nfs")
            if kind in ("nfs", "nfs4", "cifs", "smb3") and mount_helper(kind) is None:
                package = "nfs-common" if kind.startswith("nfs") else "cifs-utils"
                raise ResourceError(f"@mount: cannot mount {spec.source}: mount.{kind} is missing ({package})")
            return
        self.device()

    def acquire(self) -> None:
        """Mount the source on the mount point (fsck and mkdir first when asked); idempotent."""
        spec = self.spec
        target = self.target()
        device = self.device()
        self._check_fstype()
        entries = read_mounts()
        top = top_mount_at(target, entries)
        if top is not None:
            if not entry_matches(top, spec.source, device):
                raise ResourceError(f"busy: mount point {target} already has {top.describe()} mounted on it")
            problem = self._problem(top)
            if problem is None:
                return
            log.warning("%s is mounted but %s: mounting it again", spec.describe(), problem)
            self.release()
            entries = read_mounts()
        self._prepare_mount_point(target)
        if spec.fsck and device is not None:
            elsewhere = [e.target for e in entries if entry_matches(e, spec.source, device)]
            if elsewhere:
                log.warning("fsck skipped: %s is already mounted on %s", device, ", ".join(elsewhere))
            else:
                commands.fsck(device, spec.fstype)
        commands.mount(device or spec.source, target, spec.fstype, spec.options)
        top = top_mount_at(target, read_mounts())
        if top is None or not entry_matches(top, spec.source, device):
            found = top.describe() if top else "nothing"
            raise ResourceError(f"mount of {spec.describe()} reported success, but mountinfo shows {found} there")
        problem = self._problem(top)
        if problem is not None:
            commands.umount(target)
            raise ResourceError(f"mounted {spec.describe()}, but {problem}; unmounted it again")

    def _prepare_mount_point(self, target: str) -> None:
        if os.path.isdir(target):
            return
        if os.path.lexists(target):
            raise ResourceError(f"mount point {target} exists but is not a directory")
        if not self.spec.mkdir:
            raise ResourceError(f"mount point {target} does not exist; create it or add mkdir=yes")
        try:
            os.makedirs(target, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise ResourceError(f"cannot create mount point {target}: {exc.strerror}") from None

    def release(self) -> None:
        """Unmount; stop the processes that keep it busy first. Returns only once mountinfo no longer shows
        the mount, raises otherwise."""
        target = self.target()
        try:
            device = self.device()
            unresolved = False
        except ResourceError as exc:
            device, unresolved = None, True
            log.warning("release %s: %s; unmounting what is mounted on %s", self.spec.describe(), exc, target)
        blocked = "busy"
        devnos: set[tuple[int, int]] = set()  # the filesystems unmounted from the target in this release
        for _ in range(RELEASE_ROUNDS):
            entries = read_mounts()
            top = top_mount_at(target, entries)
            if top is None or not self._is_ours(top, device, unresolved):
                self._verify_released(target, device, unresolved, devnos)
                return
            devnos.add((top.major, top.minor))
            result = commands.umount(target)
            if result.ok:
                continue
            if not result.busy:
                raise ResourceError(f"cannot unmount {target}: {result.message}")
            blocked = self._free(top, entries)
        raise ResourceError(f"busy: {target} is still mounted after {RELEASE_ROUNDS} attempts: {blocked}")

    def leftovers(
        self, entries: list[MountEntry], device: str | None, unresolved: bool, devnos: set[tuple[int, int]]
    ) -> list[str]:
        """What still keeps our filesystem mounted in this namespace once nothing of ours is visible at the
        mount point: a mount of ours covered by another one stacked on top of it, a bind mount of it, or
        another mount of the same source. Empty when it is really gone.

        :param entries: this namespace's mounts.
        :param device: the resolved device (None for a network source, or when it vanished).
        :param unresolved: True when the device vanished; then a mount is ours when it is of the configured type
            on the mount point, or shows the device number of a mount this release took off the mount point.
        :param devnos: ``(major, minor)`` of the mounts this release unmounted from the mount point.
        """
        target = self.target()
        top = top_mount_at(target, entries)
        found = []
        for entry in entries:
            if entry.target == target:
                ours = self._is_ours(entry, device, unresolved)
                if ours and entry != top:
                    covering = top.describe() if top is not None else "another mount"
                    found.append(f"it is still mounted on {target}, covered by {covering} mounted on top of it")
                continue
            if unresolved:
                ours = not self.network and (entry.major, entry.minor) in devnos
            else:
                ours = entry_matches(entry, self.spec.source, device)
            if ours:
                part = f" (its directory {entry.root})" if entry.root != "/" else ""
                found.append(f"it is still mounted on {entry.target}{part}")
        return found

    def _verify_released(self, target: str, device: str | None, unresolved: bool, devnos: set[tuple[int, int]]) -> None:
        """Raise unless the filesystem is gone from this node: no mount of it left in this namespace, and (for a
        block device) the kernel no longer holds the device, whichever namespace mounted it."""
        spec = self.spec
        entries = read_mounts()
        top = top_mount_at(target, entries)
        if top is not None and not self._is_ours(top, device, unresolved):
            log.warning("release: %s is not ours, left alone", top.describe())
        left = self.leftovers(entries, device, unresolved, devnos)
        if left:
            raise ResourceError(
                f"busy: {spec.describe()} is not released: {'; '.join(left)}. @mount unmounts only its own mount "
                "point, never a mount stacked on it, a bind mount or another mount of the same filesystem: "
                "remove those, then stop the entry again"
            )
        if device is None or unresolved:
            return
        deadline = time.monotonic() + EXCLUSIVE_WAIT
        while device_in_use(device):
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            why = (
                f"{target} is not mounted here any more, but the kernel still holds {device}: it is mounted in "
                "another mount namespace on this node (a container?), detached by a lazy unmount with users left, "
                "or opened exclusively by something else (LVM, md, mkfs, fsck)"
            )
            if spec.lazy:
                log.warning("release %s: %s; reporting success anyway because lazy=yes", spec.describe(), why)
                return
            raise ResourceError(f"busy: {why}; another node must not mount it yet")

    def _free(self, entry: MountEntry, entries: list[MountEntry]) -> str:
        """Make a busy mount unmountable: stop its users (kill=yes), or unmount lazily (lazy=yes).

        :return: what still blocked it, for the final message when every round fails.
        :raises ResourceError: when the blockers cannot be removed (kill=no, processes that ignore SIGKILL,
            submounts, loop devices), unless lazy=yes.
        """
        spec = self.spec
        try:
            cwd = os.getcwd()
        except OSError:
            cwd = "/"
        if cwd == entry.target or cwd.startswith(entry.target + "/"):
            os.chdir("/")  # the agent itself must not keep the mount busy
        users, spared = find_users(entry.mount_id, (entry.major, entry.minor))
        try:
            if users and spec.kill:
                survivors = stop_users(users, spec.kill_grace, spec.describe())
                if not survivors:
                    return "its users were stopped"
                blockers = [f"{u.describe()} survived SIGKILL (state {u.state() or '?'})" for u in survivors]
            else:
                blockers = [u.describe() for u in users]
        finally:
            close_all(users)
        blockers += spared
        blockers += [f"{m.describe()} mounted beneath it" for m in mounts_beneath(entry, entries)]
        blockers += _kernel_users(entry.target)
        why = "; ".join(blockers) if blockers else "no process found using it"
        if spec.lazy:
            log.warning("lazy unmount of %s (lazy=yes) while still in use: %s", entry.target, why)
            result = commands.umount(entry.target, lazy=True)
            if not result.ok:
                raise ResourceError(f"lazy unmount of {entry.target} failed: {result.message}")
            return why
        if users and not spec.kill:
            raise ResourceError(f"busy: {entry.target} is in use by {why}; not stopping them because kill=no")
        if blockers:
            raise ResourceError(f"busy: {entry.target} cannot be unmounted: {why}")
        time.sleep(0.2)  # nothing visible holds it: a user that was just exiting; try again
        return why

    def monitor(self) -> bool:
        """True while our source is mounted on the mount point as asked (and, with probe=yes, writable)."""
        spec = self.spec
        target = self.target()
        top = top_mount_at(target, read_mounts())
        if top is None:
            log.warning("monitor: %s is not mounted", spec.describe())
            return False
        try:
            device = self.device()
        except ResourceError as exc:
            log.warning("monitor: %s", exc)
            return False
        if not entry_matches(top, spec.source, device):
            log.warning("monitor: %s expected, %s found", spec.describe(), top.describe())
            return False
        problem = self._problem(top)
        if problem is not None:
            log.warning("monitor: %s: %s", spec.describe(), problem)
            return False
        if spec.probe:
            failed = write_probe(target, spec.probe_timeout)
            if failed is not None:
                log.warning("monitor: %s: %s", spec.describe(), failed)
                return False
        return True


def _kernel_users(target: str) -> list[str]:
    """Loop devices and swap files backed by files on the mount: they keep it busy without any process."""
    inside = target.rstrip("/") + "/"
    found = []
    try:
        loops = sorted(n for n in os.listdir("/sys/block") if n.startswith("loop"))
    except OSError:
        loops = []
    for name in loops:
        try:
            with open(f"/sys/block/{name}/loop/backing_file", encoding="utf-8") as fh:
                backing = fh.read().strip()
        except OSError:
            continue
        if backing.startswith(inside):
            found.append(f"loop device /dev/{name} is backed by {backing}")
    try:
        with open("/proc/swaps", encoding="utf-8") as fh:
            found += [f"swap file {line.split()[0]}" for line in fh if line.startswith(inside)]
    except OSError:
        pass
    return found
