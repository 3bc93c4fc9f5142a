"""Run every benchmark in ``bench/`` with its default settings, one after the other (``make bench``).

Each script prints its own figures; this runner only sequences them (in parallel they would measure each
other), names the ones that failed, and exits non-zero if any did. Scripts that need root say so and fail
when run without it. Pass script names (``bench_decide``) to run only those.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem in argv]
        if unknown := set(argv) - {s.stem for s in scripts}:
            print(f"run_all: no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    failed: list[str] = []
    for script in scripts:
        print(f"\n=== {script.name}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"=== {script.name}: exit {rc} after {time.monotonic() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script.name)
    if failed:
        print(f"\nrun_all: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
