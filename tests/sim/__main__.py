"""``make sim``: many seeded runs of the simulated cluster (:mod:`tests.sim.world`).

``python -m tests.sim --runs 1000 --seed 0`` runs seeds 0..999; ``--bug NAME`` puts one deliberate bug in
(:mod:`tests.sim.bugs`) and stops at the first seed that catches it (with a violation that bug leads to: another
kind of violation is printed but does not count). Prints each violation with its seed and
trace, then runs per CPU-second and simulated hours covered. Exit status 1 when a run broke an invariant
(without ``--bug``) or when the bug went uncaught (with it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

from tests.sim.bugs import BUGS, CAUGHT_AS
from tests.sim.world import Params, run


def main(argv: list[str] | None = None) -> int:
    """Run the seeds asked for; see the module docstring."""
    ap = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--duration", type=float, default=600.0, help="simulated seconds per run")
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--groups", type=int, default=20)
    ap.add_argument("--bug", choices=sorted(BUGS))
    ap.add_argument("--trace", action="store_true", help="print every run's whole trace")
    args = ap.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":  # the daemon iterates over sets of names: fix their order
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "tests.sim", *(argv if argv is not None else sys.argv[1:])])
    params = Params(nodes=args.nodes, groups=args.groups, duration=args.duration)
    bug = BUGS[args.bug]() if args.bug else contextlib.nullcontext()
    began = time.process_time()
    bad = done = 0
    caught: int | None = None
    sim_seconds = 0.0
    with bug:
        for seed in range(args.seed, args.seed + args.runs):
            result = run(seed, params)
            done += 1
            sim_seconds += result.sim_seconds
            if args.trace:
                print("\n".join(result.trace))
            if result.violation:
                bad += 1
                print(result.report(), flush=True)
                if args.bug and any(sign in result.violation for sign in CAUGHT_AS[args.bug]):
                    caught = seed
                    break
    cpu = time.process_time() - began
    print(
        f"{done} runs ({args.nodes} nodes, {args.groups} groups, {args.duration:g} simulated s each), "
        f"{bad} with a violation; {cpu:.1f} CPU-s, {done / cpu:.2f} runs/CPU-s, "
        f"{sim_seconds / 3600:.1f} simulated hours"
    )
    if args.bug:
        outcome = f"caught after {done} seeds (seed {caught})" if caught is not None else "NOT caught"
        print(f"bug {args.bug}: {outcome}")
        return 0 if caught is not None else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
