"""Build the LD_PRELOAD line monitor and decode what it logged into FireCracker frames.

The shim (``linemon_shim.c``) fakes the modem-line ioctls of a pseudo-terminal and logs every DTR/RTS
change; :func:`decode_frames` reads those changes back the way a CM17A does: both lines high is standby,
RTS alone a 1, DTR alone a 0, each bit followed by standby; 40 bits make a frame. Anything else (two bits
without standby between them, both lines low in the middle of a frame, a frame without its ``D5 AA``
header or ``AD`` footer) is an error, so a driver that gets the line discipline wrong fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SOURCE = Path(__file__).with_name("linemon_shim.c")
STANDBY, ONE, ZERO, RESET = (1, 1), (0, 1), (1, 0), (0, 0)


def build_shim(out_dir: Path) -> Path:
    """Compile the shim with gcc into ``out_dir`` and return the library's path."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc is needed to build the line-monitor shim")
    lib = out_dir / "linemon.so"
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(lib), str(SOURCE), "-ldl"],
        check=True,
        capture_output=True,
        text=True,
    )
    return lib


def shim_env(lib: Path, log: Path, fast: bool = False) -> dict[str, str]:
    """The environment that runs a program under the shim, logging to ``log``."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = str(lib)
    env["LINEMON_LOG"] = str(log)
    env["LINEMON_FAST"] = "1" if fast else "0"
    return env


@dataclass(frozen=True)
class LineChange:
    """One logged ioctl: when (ns, virtual clock in fast mode) and the resulting (dtr, rts)."""

    ns: int
    op: str
    dtr: int
    rts: int


def read_log(log: Path) -> list[LineChange]:
    """Parse the shim's log (empty when nothing touched the lines)."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        ns, op, dtr, rts = line.split()
        out.append(LineChange(int(ns), op, int(dtr), int(rts)))
    return out


def decode_bits(changes: list[LineChange]) -> list[int]:
    """The bits the line changes clock out; raises ValueError on a broken line discipline."""
    states: list[tuple[int, int]] = []
    for c in changes:
        state = (c.dtr, c.rts)
        if not states or states[-1] != state:  # repeated ioctls that change nothing are not edges
            states.append(state)
    bits: list[int] = []
    previous = STANDBY
    for state in states:
        if state in (ONE, ZERO):
            if previous != STANDBY:
                raise ValueError(f"bit {len(bits)}: {previous} -> {state} without standby between bits")
            bits.append(1 if state == ONE else 0)
        elif state == RESET and len(bits) % 40:
            raise ValueError(f"both lines low in the middle of a frame, after bit {len(bits)}")
        previous = state
    if states and states[-1] not in (STANDBY, RESET):
        raise ValueError("the lines were left mid-bit")
    return bits


def decode_frames(changes: list[LineChange]) -> list[bytes]:
    """The 5-byte frames in the line changes, each checked for its header and footer."""
    bits = decode_bits(changes)
    if len(bits) % 40:
        raise ValueError(f"{len(bits)} bits is not a whole number of 40-bit frames")
    frames = []
    for start in range(0, len(bits), 40):
        chunk = bits[start : start + 40]
        data = bytes(int("".join(map(str, chunk[i : i + 8])), 2) for i in range(0, 40, 8))
        if data[:2] != b"\xd5\xaa" or data[4] != 0xAD:
            raise ValueError(f"frame {start // 40}: {data.hex(' ')} lacks the D5 AA header or AD footer")
        frames.append(data)
    return frames
