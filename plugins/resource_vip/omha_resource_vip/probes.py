"""A ``check`` that just found the address free saves the ``acquire`` that follows most of its probe.

A group with a ``test`` entry runs ``@vip ... check`` (an ARP probe of ``probe_timeout`` seconds: nobody may
answer for the address) and, the moment it passes, ``acquire``, which with ``dad=yes`` (IPv4) probed again for
as long before adding the address: two full probes back to back on the failover's critical path. Now a
passing check leaves a note of when its probe ended (its *clear window*), per network namespace, interface
(index and MAC) and address, in :data:`NOTES` (tmpfs). An ``acquire`` that finds a note younger than
``probe_timeout`` uses it once (it is removed) and probes for :data:`CONFIRM_FRACTION` of ``probe_timeout``
only, still sending all its probes:

- a host that holds the address answers an ARP request within milliseconds, so the short probe still finds it
  (the tests check that an address taken between the check and the acquire is refused);
- a host probing for the same address at the same time probes for seconds (RFC 5227: three probes, one to two
  seconds apart), so it falls into the check's long window or the acquire's short one.

Without a note (no ``test`` entry, a check that failed, or one too old) the acquire probes in full as before.
"""

from __future__ import annotations

import os
import time

from omha_resource_vip.links import IPAddress, Link

#: where notes are kept: tmpfs, so a reboot forgets them (root only, like the agent's netlink changes)
NOTES = "/run/omha/vip-probes"
#: the acquire's probe after a recent clear check, as a fraction of ``probe_timeout``
CONFIRM_FRACTION = 0.2
#: notes older than this (seconds, by their file's mtime) are of no use to anyone: removed by the next check
FORGET_AFTER = 60.0


def _forget_old() -> None:
    limit = time.time() - FORGET_AFTER
    for name in os.listdir(NOTES):
        path = os.path.join(NOTES, name)
        try:
            if os.stat(path).st_mtime < limit:
                os.unlink(path)
        except OSError:
            pass


def _note_path(link: Link, address: IPAddress) -> str:
    netns = os.stat("/proc/self/ns/net").st_ino
    return os.path.join(NOTES, f"{netns}-{link.index}-{link.mac.hex()}-{address}")


def note_clear(link: Link, address: IPAddress) -> None:
    """Record that a probe for ``address`` on ``link`` just ended with nobody answering (best effort: without
    a note the acquire probes in full). Notes no acquire used (the group went elsewhere, the namespace is gone)
    are removed here once older than :data:`FORGET_AFTER` seconds."""
    try:
        os.makedirs(NOTES, mode=0o700, exist_ok=True)
        _forget_old()
        path = _note_path(link, address)
        with open(f"{path}.{os.getpid()}", "w") as fh:
            fh.write(f"{time.monotonic()!r}\n")
        os.replace(f"{path}.{os.getpid()}", path)
    except OSError:
        pass


def take_clear(link: Link, address: IPAddress, within: float) -> float | None:
    """Seconds since a clear probe for ``address`` on ``link`` ended, when one ended at most ``within`` seconds
    ago; the note is used up. None otherwise."""
    try:
        path = _note_path(link, address)
        with open(path) as fh:
            ended = float(fh.read().strip())
        os.unlink(path)
    except (OSError, ValueError):
        return None
    age = time.monotonic() - ended
    return age if 0 <= age <= within else None
