"""Wall-clock jumps for the ``clock_jump`` fault: a node's daemon (and everything it starts) run with their wall
clock offset through libfaketime, the monotonic clocks left true by the :file:`monofix.c` shim.

omha must not depend on the nodes' wall clocks agreeing: claims, leases and liveness are judged by monotonic
time and by the store's own counters. A jump only moves the wall clock (``time.time()``, ``gettimeofday``);
drift (a clock running fast or slow) and jumps of the monotonic clock are not covered.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def libfaketime() -> str | None:
    """The path of libfaketime's single-threaded library (Debian package libfaketime), or None."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


def missing() -> str:
    """Why clock jumps cannot run here ("" when they can): libfaketime and a C compiler are needed."""
    if libfaketime() is None:
        return "libfaketime is not installed (Debian packages faketime, libfaketime)"
    if shutil.which("cc") is None:
        return "no C compiler to build the monofix shim (Debian packages gcc, libc6-dev)"
    return ""


def build_shim(where: Path) -> Path:
    """Compile :file:`monofix.c` into ``where/monofix.so`` (once per campaign) and return its path."""
    out = where / "monofix.so"
    if not out.exists():
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(out), str(HERE / "monofix.c"), "-ldl"],
                       check=True, capture_output=True, text=True)
    return out


def jump_env(shim: Path, offset: str) -> list[str]:
    """``NAME=value`` words for ``env`` that run a program with its wall clock offset by ``offset`` (``+95s``).

    The shim comes first so that its clock functions win over libfaketime's; stat() is not faked, so file times
    stay the shared directory's own, as they would on a node whose clock jumped (the file server sets them)."""
    lib = libfaketime()
    assert lib is not None
    return [f"LD_PRELOAD={shim}:{lib}", f"FAKETIME={offset}", "NO_FAKE_STAT=1"]
