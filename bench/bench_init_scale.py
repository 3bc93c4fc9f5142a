"""Scale of the local init: 500 entries in 50 groups.

Each group has 10 ``respawn`` entries running ``sleep`` (dash execs it: one process per entry): 5 at levels
``12`` and 5 at level ``1``. Figures:

- start: wall time of telling all 50 groups ``1`` until every group is DONE (500 processes started);
- move 1 -> 2: one tell per group; 250 entries stopped (SIGINT, reverse order within each group), 250 kept;
- move 2 -> 1: 250 started again, 250 kept;
- idle: the init's own CPU time (user + system, this process only) over IDLE seconds with 500 entries
  running, as a percentage of one core, and its RSS; the guard's RSS beside it;
- guard: the same 500 entries in a separate daemon process that is then SIGKILLed; time until every
  process it started is gone (the guard sends SIGTERM, and SIGKILL 0.5 s later to what is left).

Usage: ``python bench/bench_init_scale.py [IDLE_SECONDS]`` (default 60).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit
from omha_core.init.guard import live_groups

GROUPS, PER_GROUP = 50, 10


def cltab_text() -> str:
    lines = []
    for g in range(GROUPS):
        for e in range(PER_GROUP):
            levels = "12" if e < PER_GROUP // 2 else "1"
            lines.append(f"g{g}:g{g}e{e}:{levels}:respawn:sleep 100000\n")
    return "".join(lines)


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def tell_all(init: LocalInit, level: str) -> float:
    began = time.monotonic()
    for g in range(GROUPS):
        init.tell(f"g{g}", level)
    states = await asyncio.gather(*(init.wait_settled(f"g{g}", 300) for g in range(GROUPS)))
    elapsed = time.monotonic() - began
    assert set(states) == {"DONE"}, states
    return elapsed


def running(init: LocalInit) -> int:
    return sum(1 for g in init.status().values() for e in g["entries"].values() if e["state"] == "running")


async def in_process(idle: float) -> None:
    logger = logging.getLogger("bench.scale")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    devnull = open(os.devnull, "w")  # noqa: SIM115
    logger.addHandler(logging.StreamHandler(devnull))
    init = LocalInit(parse_cltab(cltab_text()), options={"stop_grace": [0, 5, 10]}, logger=logger)
    await init.start()
    try:
        start = await tell_all(init, "1")
        print(f"start 500 entries in 50 groups:          {start * 1000:7.0f} ms  ({running(init)} running)")
        move = await tell_all(init, "2")
        print(f"move 1 -> 2 (250 stopped, 250 kept):     {move * 1000:7.0f} ms  ({running(init)} running)")
        back = await tell_all(init, "1")
        print(f"move 2 -> 1 (250 started, 250 kept):     {back * 1000:7.0f} ms  ({running(init)} running)")
        cpu0, t0 = cpu_seconds(), time.monotonic()
        await asyncio.sleep(idle)
        cpu = cpu_seconds() - cpu0
        wall = time.monotonic() - t0
        share = 100 * cpu / wall
        print(f"idle CPU over {wall:.0f} s, 500 running:       {share:7.3f} % of one core ({cpu * 1000:.0f} ms)")
        print(f"RSS of the init (this process):          {rss_mb():7.1f} MB")
        if init.guard_pid:
            print(f"RSS of the guard process:                {rss_mb(init.guard_pid):7.1f} MB")
        began = time.monotonic()
        await init.shutdown()
        print(f"shutdown (500 stopped, group by group):  {(time.monotonic() - began) * 1000:7.0f} ms")
    finally:
        devnull.close()


DAEMON = """
import asyncio, json, sys
from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit

async def main():
    init = LocalInit(parse_cltab(sys.stdin.read()))
    await init.start()
    groups = init.cltab.groups
    for g in groups:
        init.tell(g, "1")
    for g in groups:
        await init.wait_settled(g, 300)
    pids = [e["pid"] for g in init.status().values() for e in g["entries"].values()]
    print(json.dumps(pids), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def guard_kill() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(cltab_text())
    proc.stdin.close()
    pgids = json.loads(proc.stdout.readline())
    try:
        began = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while live_groups(pgids) and time.monotonic() - began < 30:
            time.sleep(0.002)
        elapsed = time.monotonic() - began
        left = len(live_groups(pgids))
        print(f"daemon SIGKILLed -> all {len(pgids)} groups gone:  {elapsed * 1000:7.0f} ms  ({left} left)")
    finally:
        for p in pgids:
            if p in live_groups([p]):
                os.killpg(p, signal.SIGKILL)
        proc.stdout.close()


def main() -> None:
    idle = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    print(f"local init at scale ({os.cpu_count()} cpus)")
    with tempfile.TemporaryDirectory(prefix="omha-bench-scale."):
        asyncio.run(in_process(idle))
    guard_kill()


if __name__ == "__main__":
    main()
