"""What one fence call costs through the core's orchestration (``omha_core.fencing.fence_levels``).

    python bench/bench_fencing.py [--reps 30]

- the orchestration alone: an in-process device that returns at once, called directly and through
  ``fence_levels`` (a worker thread per call, bounded by the device's declared ``max_duration``);
- the ``command`` device: ``off`` of a one-target node, ``off`` and ``reboot`` of a two-supply node (the reboot
  is the power cycle: off both, pause 0, on both);
- the ``fence_agent`` device driving the real ClusterLabs ``fence_dummy`` (a Python process per call), when
  fence-agents is installed.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from omha_core.config import validate_config
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.fencing import Device, build_devices, fence_levels
from omha_core.plugins import get_plugin_manager


class Instant(FenceDevice):
    def off(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, verified=True)

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, verified=True)


def measure(reps: int, call: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def line(label: str, times: list[float]) -> None:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    print(f"| {label} | {len(ms)} | {statistics.median(ms):.3f} ms | {p90:.3f} ms |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-fencing-"))
    try:
        print("| call | reps | median | p90 |\n| --- | --- | --- | --- |")
        instant = Device("instant", "instant", "bench", Instant("instant", {}), {"n2": ["1"]}, None)
        line("in-process device, called directly", measure(args.reps * 10, lambda: instant.device.fence("off", ["1"])))
        line(
            "in-process device, through fence_levels",
            measure(args.reps * 10, lambda: fence_levels([instant], "n2", "off", [])),
        )
        entries = [
            {"name": "one", "kind": "command", "command": "true", "nodes": {"n2": "1"}},
            {"name": "dual", "kind": "command", "command": "true", "reboot_pause": 0, "nodes": {"n3": ["3", "4"]}},
        ]
        agent = shutil.which("fence_dummy") or shutil.which("fence_dummy", path="/usr/sbin:/sbin")
        if agent:
            (tmp / "power").write_text("on")
            args_ = {"type": "file", "status_file": str(tmp / "power")}
            entries.append(
                {"name": "dummy", "kind": "fence_agent", "agent": agent, "args": args_, "nodes": {"n4": "1"}}
            )
        cfg = validate_config({"fencing": {"devices": entries}}, "bench")
        devices = build_devices(cfg, get_plugin_manager())
        by = {d.name: d for d in devices}
        line("`command` off, one target", measure(args.reps, lambda: fence_levels([by["one"]], "n2", "off", [])))
        line("`command` off, two supplies", measure(args.reps, lambda: fence_levels([by["dual"]], "n3", "off", [])))
        line(
            "`command` reboot, two supplies (off, off, on, on)",
            measure(args.reps, lambda: fence_levels([by["dual"]], "n3", "reboot", [])),
        )
        if agent:
            line(
                "`fence_agent` fence_dummy off",
                measure(args.reps, lambda: fence_levels([by["dummy"]], "n4", "off", [])),
            )
        else:
            print("fence_dummy not installed: fence_agent row skipped", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
