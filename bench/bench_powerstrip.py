"""Benchmark of the ``apc_snmp`` fence device against the snmpsim APC PDUs the tests use.

Figures (median, min, max over ``--reps`` runs, seconds of wall time for the whole synchronous call, as the
core's fencing thread sees it: SNMP engine set-up, model detection, outlet resolution, command, polling):

- status: read one outlet; once with a fresh device (its first action builds a pysnmp engine, which loads
  pysnmp's MIB modules), then with the device's engine reused as the daemon does.
- off+verify: switch one outlet off and poll until it reads off (the outlet is switched on, untimed, before
  each run); by number, and by name (adds a walk of the outlet-name table).
- reboot: off, verified, ``reboot_pause``, on, verified.
- fence_apc_snmp off: the ClusterLabs agent doing the same off, for comparison (fewer runs).

The simulated relay follows a command after ``--relay`` seconds (0.2 by default; ``--relay 0`` shows the
protocol overhead alone); the device polls every ``poll_interval`` (0.25 s default, ``--poll``).

Usage: ``.venv/bin/python bench/bench_powerstrip.py [--reps 15] [--relay 0.2] [--poll 0.25] [--pause 1.0]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_fence_powerstrip.device import ApcSnmpDevice  # noqa: E402
from omha_testing.snmpsim import Simulator, start_simulator  # noqa: E402

COMMUNITY = "apc-8641-rpdu"  # the Rack PDU model path
OUTLET, NAME = "2", "DISK TRAY"


def measure(reps: int, prepare: Callable[[], object], action: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(reps):
        prepare()
        t0 = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - t0)
        if getattr(result, "ok", True) is False:
            raise SystemExit(f"benchmark action failed: {result}")
    return times


def line(label: str, times: list[float]) -> None:
    print(
        f"{label:<34} median {statistics.median(times):6.3f} s   "
        f"min {min(times):6.3f}   max {max(times):6.3f}   (n={len(times)})",
        flush=True,
    )


def fence_apc_snmp_off(sim: Simulator) -> Callable[[], object]:
    agent = shutil.which("fence_apc_snmp") or shutil.which("fence_apc_snmp", path="/usr/sbin:/sbin")
    if agent is None:
        raise FileNotFoundError("fence_apc_snmp")
    cmd = [agent, "--ip", sim.host, "--ipport", str(sim.port), "--community", COMMUNITY, "--plug", OUTLET]

    def run() -> object:
        subprocess.run([*cmd, "--action", "off"], check=True, capture_output=True, timeout=60)
        return None

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--relay", type=float, default=0.2, help="simulated relay delay, seconds")
    parser.add_argument("--poll", type=float, default=0.25, help="device poll_interval, seconds")
    parser.add_argument("--pause", type=float, default=1.0, help="device reboot_pause, seconds")
    parser.add_argument("--version", default="1", help="SNMP version: 1 (GETNEXT walks) or 2c (GETBULK walks)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omha-bench-powerstrip-") as tmp:
        sim = start_simulator(tmp, delay=args.relay, reboot=0.5)
        try:
            options = sim.options(
                COMMUNITY, poll_interval=args.poll, reboot_pause=args.pause, timeout=20, version=args.version
            )
            dev = ApcSnmpDevice("pdu1", options)
            on = lambda: dev.on([OUTLET])  # noqa: E731
            print(
                f"apc_snmp against snmpsim ({COMMUNITY}, SNMP v{args.version}, 127.0.0.1), relay {args.relay:g} s, "
                f"poll {args.poll:g} s, reboot_pause {args.pause:g} s; {os.cpu_count()} CPUs"
            )
            fresh = lambda: ApcSnmpDevice("pdu1", options).status([OUTLET])  # noqa: E731
            line("status, fresh device (new engine)", measure(args.reps, lambda: None, fresh))
            line("status (1 outlet)", measure(args.reps, lambda: None, lambda: dev.status([OUTLET])))
            line("off+verify (by number)", measure(args.reps, on, lambda: dev.off([OUTLET])))
            line("off+verify (by name)", measure(args.reps, on, lambda: dev.off([NAME])))
            line("off+verify (2 outlets)", measure(args.reps, lambda: dev.on(["2", "3"]), lambda: dev.off(["2", "3"])))
            line("reboot", measure(max(3, args.reps // 3), on, lambda: dev.reboot([OUTLET])))
            try:
                line("fence_apc_snmp off (comparison)", measure(max(3, args.reps // 3), on, fence_apc_snmp_off(sim)))
            except FileNotFoundError:
                print("fence_apc_snmp not installed: comparison skipped")
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
