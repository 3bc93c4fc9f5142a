"""Respawn latency of the local init: from a respawn entry's exit to its replacement running.

One ``respawn`` entry exits at once, 1,000 times in a row (throttle disabled with a huge respawn_limit).
Three intervals are measured for every restart, all on CLOCK_MONOTONIC:

- end to end: the old process's last act (it writes a timestamp, then exits) to the new process's first act
  (a timestamp written at the top of ``main``, after ``sh -c`` has exec'd it). This is what a service sees.
  It includes the old process's teardown, the kernel waking the event loop (pidfd), the init's bookkeeping,
  ``posix_spawn`` of ``/bin/sh``, dash's start-up and its ``exec`` of the program, and the program's dynamic
  loading.
- inside the init: the pidfd callback firing to ``posix_spawn`` returning (glibc returns once the child has
  exec'd ``/bin/sh``): the part the init itself is responsible for.
- the rest (end to end minus the init's part): kernel wake-up, ``sh`` start-up and the second exec.

The timestamps come from a tiny C program compiled here with ``cc`` (a ``python -c`` would measure Python's
start-up, ``date +%s%N`` a fork and exec of ``date``); without a compiler, bash's ``$EPOCHREALTIME``
(CLOCK_REALTIME, microseconds) is used instead, with bash's start-up in the figure.

Usage: ``python bench/bench_respawn.py [RESTARTS] [--bash]`` (``--bash``: use the bash stamps even with a compiler).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit
from omha_core.init.child import Child
from omha_core.init.process import Supervised

STAMP_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static void stamp(int fd, char what) {
    struct timespec ts; char buf[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(buf, sizeof buf, "%c %lld\n", what, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    if (write(fd, buf, n) != n) _exit(2);
}
int main(int argc, char **argv) {
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return 2;
    stamp(fd, 's');
    stamp(fd, 'e');
    return 0;
}
"""


def build_stamp(tmp: str) -> str | None:
    """Compile the timestamp program; None when there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    src, exe = os.path.join(tmp, "stamp.c"), os.path.join(tmp, "stamp")
    with open(src, "w") as fh:
        fh.write(STAMP_C)
    subprocess.run([cc, "-O2", "-o", exe, src], check=True)
    return exe


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(restarts: int, tmp: str, use_bash: bool) -> None:
    log = os.path.join(tmp, "stamps")
    exe = None if use_bash else build_stamp(tmp)
    if exe is not None:
        command, scale, clock = f"{exe} {log}", 1e-6, "C program, CLOCK_MONOTONIC"
    else:
        command = f"""exec bash -c 'echo s ${{EPOCHREALTIME/./}} >> {log}; echo e ${{EPOCHREALTIME/./}} >> {log}'"""
        scale, clock = 1e-3, "bash $EPOCHREALTIME, bash start-up included"

    # the init's own part: pidfd callback -> posix_spawn returned
    inside: list[float] = []
    reaped: list[int] = [0]
    orig_reap, orig_spawn = Child._reap, Supervised._spawn

    def reap(self: Child) -> None:
        reaped[0] = time.monotonic_ns()
        orig_reap(self)

    def spawn(self: Supervised) -> None:
        orig_spawn(self)
        if reaped[0]:
            inside.append((time.monotonic_ns() - reaped[0]) / 1e6)

    Child._reap = reap  # type: ignore[method-assign]
    Supervised._spawn = spawn  # type: ignore[method-assign]

    logger = logging.getLogger("bench.respawn")
    logger.setLevel(logging.INFO)  # an info line per restart, as a daemon logs it (to /dev/null here)
    logger.propagate = False
    devnull = open(os.devnull, "w")  # noqa: SIM115
    logger.addHandler(logging.StreamHandler(devnull))
    init = LocalInit(
        parse_cltab(f"b:r:run:respawn:{command}\n"),
        options={"respawn_limit": 10**9, "stop_grace": [0, 1, 1]},
        logger=logger,
    )
    await init.start()
    began = time.monotonic()
    init.tell("b", "run")
    while init.status()["b"]["entries"]["r"]["restarts"] < restarts:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - began
    await init.shutdown()
    devnull.close()
    Child._reap, Supervised._spawn = orig_reap, orig_spawn  # type: ignore[method-assign]

    with open(log) as fh:
        stamps = [(kind, int(value)) for kind, value in (line.split() for line in fh)]
    ends = [(i, v) for i, (k, v) in enumerate(stamps) if k == "e"]
    e2e = [(stamps[i + 1][1] - v) * scale for i, v in ends if i + 1 < len(stamps) and stamps[i + 1][0] == "s"][
        :restarts
    ]
    inside = inside[:restarts]
    rest = [a - b for a, b in zip(e2e, inside, strict=False)]
    print(f"respawn latency over {len(e2e)} restarts ({clock}); {elapsed:.2f} s for all, {os.cpu_count()} cpus")
    for name, values in (("end to end", e2e), ("inside the init", inside), ("kernel + sh + exec", rest)):
        print(
            f"  {name:20s} median {statistics.median(values):6.2f} ms   p99 {percentile(values, 0.99):6.2f} ms"
            f"   max {max(values):6.2f} ms"
        )


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--bash"]
    restarts = int(args[0]) if args else 1000
    with tempfile.TemporaryDirectory(prefix="omha-bench-respawn.") as tmp:
        asyncio.run(measure(restarts, tmp, "--bash" in sys.argv))


if __name__ == "__main__":
    main()
