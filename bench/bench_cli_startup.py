"""CLI start-up time: `omha --help` and `omha plugins` against `python -c pass`, medians of 30 runs each.

Target (issue 2): under 150 ms with all plugins installed, and under 3x `python -c pass`. The runs of the three
commands are interleaved so that machine noise hits them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = 30
BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    omha = str(BIN / "omha")
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "omha --help": [omha, "--help"],
        "omha plugins": [omha, "plugins"],
    }
    env_plugins = subprocess.run([omha, "plugins"], capture_output=True, text=True, check=True).stdout
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(RUNS):
        for name, cmd in cmds.items():
            samples[name].append(timed(cmd))
    base = statistics.median(samples["python -c pass"])
    print(f"plugins loaded:\n{env_plugins}")
    print(f"{'command':<18} {'median ms':>10} {'p90 ms':>8} {'x python':>9}   ({RUNS} runs, {os.cpu_count()} cores)")
    for name, values in samples.items():
        med = statistics.median(values)
        p90 = sorted(values)[int(0.9 * len(values)) - 1]
        print(f"{name:<18} {med * 1000:>10.1f} {p90 * 1000:>8.1f} {med / base:>9.2f}")


if __name__ == "__main__":
    main()
