"""How long the guard takes to release held resource agents after the daemon is SIGKILLed.

``python bench/bench_guard_release.py [ENTRIES] [RUNS]``: a daemon (a LocalInit in a child process) holds
ENTRIES ``@file`` wait entries; it is SIGKILLed and the time until the last marker file is gone is printed, per
run and as the median. The guard runs the releases one after the other (each a ``python -m omha_core.agent``
start-up), so the figure grows linearly with the number of held agent entries.
"""

from __future__ import annotations

import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMON = """
import asyncio, sys
from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit

async def main():
    init = LocalInit(parse_cltab(open(sys.argv[1]).read()))
    await init.start()
    init.tell("g", "run")
    await init.wait_settled("g", 600)
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def one_run(tmp: Path, entries: int) -> float:
    markers = [tmp / f"m{i}" for i in range(entries)]
    (tmp / "cltab").write_text("".join(f"g:e{i}:run:wait:@file {m}\n" for i, m in enumerate(markers)))
    (tmp / "daemon.py").write_text(DAEMON)
    proc = subprocess.Popen(
        [sys.executable, str(tmp / "daemon.py"), str(tmp / "cltab")], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 600)
    assert ready and proc.stdout.readline().strip() == b"ready", "the daemon did not get ready"
    assert all(m.exists() for m in markers)
    began = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while any(m.exists() for m in markers):
        if time.monotonic() - began > 600:
            raise SystemExit("the guard did not release everything within 600 s")
        time.sleep(0.002)
    proc.stdout.close()
    return time.monotonic() - began


def main() -> None:
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            times.append(one_run(Path(tmp), entries))
    shown = ", ".join(f"{t * 1000:.0f}" for t in times)
    print(f"daemon SIGKILLed -> {entries} held @file entries released by the guard ({os.cpu_count()} cpus)")
    print(f"  runs (ms): {shown}")
    median = statistics.median(times)
    print(f"  median {median * 1000:.0f} ms, {median / entries * 1000:.0f} ms per entry")


if __name__ == "__main__":
    main()
