"""Benchmark of the X10 fence devices: ``x10_cm11a`` against the tests' CM11A emulator on a pty, and
``x10_cm17a`` bit-banging a pty's (faked) DTR/RTS lines under the tests' LD_PRELOAD line monitor.

Figures (median, min, max wall time of the whole synchronous device call, as the core's fencing thread sees
it: port open, protocol, close):

- cm11a off: one module, ``repeat`` 1 and 3, the emulator answering at once (no power-line delay: this is
  omha's own cost; a real CM11A adds about 0.5-1 s per frame for the power line);
- cm11a off + poll: the interface polls instead of the OFF frame's checksum (served, command resent);
- cm11a status: Status Request to a two-way module and its reply through a poll;
- cm17a off: one frame, ``repeat`` 1 and 3, real sleeps (measured inside the child process, so Python's
  start-up is excluded); and how long the line states really lasted against the nominal 1 ms.

Usage: ``.venv/bin/python bench/bench_x10.py [--reps 30] [--rf-reps 5]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_fence_x10.cm11a import CM11A  # noqa: E402
from omha_testing.cm11a_emulator import CM11AEmulator  # noqa: E402
from omha_testing.linemon import build_shim, read_log, shim_env  # noqa: E402

CHILD = """
import json, sys, time
from omha_fence_x10.cm17a import CM17A
dev = CM17A("rf", {"port": sys.argv[1], "repeat": int(sys.argv[2])})
t0 = time.perf_counter()
res = dev.off(["A1"])
print(json.dumps({"ok": res.ok, "seconds": time.perf_counter() - t0}))
"""


def line(label: str, times: list[float], unit: str = "s") -> None:
    scale = 1000.0 if unit == "ms" else 1.0
    med, lo, hi = (statistics.median(times) * scale, min(times) * scale, max(times) * scale)
    print(f"{label:<36} median {med:8.3f} {unit}   min {lo:8.3f}   max {hi:8.3f}   (n={len(times)})", flush=True)


def timed(reps: int, make_emulator: Callable[[], CM11AEmulator], action: Callable[[str], object]) -> list[float]:
    times = []
    for _ in range(reps):
        with make_emulator() as emu:
            t0 = time.perf_counter()
            result = action(emu.port)
            times.append(time.perf_counter() - t0)
            if getattr(result, "ok", True) is False:
                raise SystemExit(f"benchmark action failed: {result}")
    return times


def cm11a(reps: int) -> None:
    def off(repeat: int) -> Callable[[str], object]:
        return lambda port: CM11A("plugs", {"port": port, "repeat": repeat}).off(["A1"])

    line("cm11a off, repeat 1", timed(reps, CM11AEmulator, off(1)), "ms")
    line("cm11a off, repeat 3", timed(reps, CM11AEmulator, off(3)), "ms")

    def polling() -> CM11AEmulator:
        emu = CM11AEmulator()
        emu.interrupt(1, "poll")
        return emu

    line("cm11a off, repeat 1, poll mid-command", timed(reps, polling, off(1)), "ms")

    def status(port: str) -> object:
        return CM11A("plugs", {"port": port, "repeat": 1}).status(["A1"])

    line("cm11a status (two-way module)", timed(reps, lambda: CM11AEmulator(two_way={"A1"}), status), "ms")


def cm17a(reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_shim(Path(tmp))
        master, slave = os.openpty()
        tty.setraw(slave)
        try:
            for repeat in (1, 3):
                times, states = [], []
                for i in range(reps):
                    log = Path(tmp) / f"rf{repeat}-{i}.log"
                    out = subprocess.run(
                        [sys.executable, "-c", CHILD, os.ttyname(slave), str(repeat)],
                        env=shim_env(lib, log),
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    result = json.loads(out)
                    if not result["ok"]:
                        raise SystemExit("cm17a benchmark action failed")
                    times.append(result["seconds"])
                    edges, last = [], None
                    for change in read_log(log):  # the moments the (dtr, rts) state really changed
                        if (change.dtr, change.rts) != last:
                            edges.append(change.ns)
                            last = (change.dtr, change.rts)
                    # how long each state lasted inside frames (under 50 ms: not power-up or frame gaps)
                    durations = [(b - a) / 1e9 for a, b in itertools.pairwise(edges)]
                    states += [d for d in durations if d < 0.05]
                line(f"cm17a off, repeat {repeat}", times)
                if repeat == 1:
                    line("cm17a line state (nominal 1 ms)", states, "ms")
        finally:
            os.close(master)
            os.close(slave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30, help="runs per CM11A figure")
    parser.add_argument("--rf-reps", type=int, default=5, help="runs per CM17A figure")
    args = parser.parse_args()
    print(f"fence_x10 benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}", flush=True)
    cm11a(args.reps)
    cm17a(args.rf_reps)


if __name__ == "__main__":
    main()
