"""Entries leaving a level are signalled together: N entries of one group that ignore SIGINT and SIGTERM.

For each N, one group of N ``respawn`` entries (``trap '' INT TERM; while :; do sleep 1; done``) is told ``run``,
then ``stop``; the figure is the wall time of the stop, from the tell until the group is DONE with every process
gone. With ``stop_grace`` 0, +0.5, +0.5 s each entry needs the whole ladder (1 s, then SIGKILL); signalled one
after another, N entries would take about N seconds.

Usage: ``python bench/bench_stop_together.py [N ...]`` (default 1 10 50 200).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit

STUBBORN = "trap '' INT TERM; while :; do sleep 1; done"


async def measure(n: int) -> float:
    cltab = parse_cltab("".join(f"g:e{i}:run:respawn:{STUBBORN}\n" for i in range(n)))
    logger = logging.getLogger("bench")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    init = LocalInit(cltab, options={"stop_grace": [0, 0.5, 0.5]}, logger=logger)
    await init.start()
    try:
        init.tell("g", "run")
        await init.wait_settled("g", 120)
        await asyncio.sleep(0.5)  # every shell has installed its traps
        start = time.monotonic()
        init.tell("g", "stop")
        state = await init.wait_settled("g", 600)
        took = time.monotonic() - start
        assert state == "DONE", state
        return took
    finally:
        await init.shutdown()


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1, 10, 50, 200]
    print("| entries | stop wall time |\n| --- | --- |")
    for n in sizes:
        print(f"| {n} | {asyncio.run(measure(n)):.2f} s |")


if __name__ == "__main__":
    main()
