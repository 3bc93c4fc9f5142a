"""The deterministic simulation (tests/sim/world.py) on a fixed seed set, and proof that it catches bugs.

Five real daemons, twenty groups, ten simulated minutes per seed, with crashes, freezes, store partitions,
membership splits, failing fence devices, clock skew and cltab/hactl changes. Each run is a ``python -m
tests.sim`` process, which fixes ``PYTHONHASHSEED`` (the daemon iterates over sets of node names), so that a seed
means the same run in every process. Timings go to bench/README.md, not here.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.sim.bugs import BUGS, CAUGHT_AS
from tests.sim.world import Params, World, run

#: the fixed seed set CI runs (about 2.5 CPU-s each)
SEEDS, FIRST = 5, 0
#: a deliberate bug must break an invariant it leads to within this many seeds from seed 0 (2026-12-06, with the
#: restart fault and per-run store slowness in the schedules: skip-the-claim and break-claims-before-the-fence
#: at seed 0, ignore-quorum at seed 5)
CATCH_WITHIN = 8


def sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.sim", *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_every_invariant_holds_on_the_fixed_seeds() -> None:
    done = sim("--runs", str(SEEDS), "--seed", str(FIRST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{SEEDS} runs (5 nodes, 20 groups, 600 simulated s each), 0 with a violation" in done.stdout


def test_a_fence_started_with_quorum_may_land_after_a_split() -> None:
    """A node cut off from the store is lost; a quorate peer starts fencing it, and the membership splits while
    the call is under way, leaving the fencer in a minority when the power-off lands. The fence was the quorum's
    decision and stands (as a started fence does in Pacemaker); the checker once called it a fence from a
    minority (found by seed 26 before the restart fault changed every schedule; scripted here)."""
    def setup(world: World) -> None:
        world.loop.call_later(30.0, world.fault, "cut", "n4", 20.0)
        decided = world.fence_decided

        def then_split(fencer: str, target: str) -> None:
            decided(fencer, target)
            if target == "n4" and world.split is None:
                world.split = [{fencer, target}, set(world.names) - {fencer, target}]
                world.trace(f"split {sorted({fencer, target})} | {sorted(set(world.names) - {fencer, target})}")
                world.loop.call_later(10.0, world.unsplit)

        world.fence_decided = then_split  # type: ignore[method-assign]

    result = run(1, Params(duration=200.0, faults=0), setup)
    trace = "\n".join(result.trace)
    fenced = [line for line in result.trace if "fences n4: off" in line]
    split = [line for line in result.trace if line.split()[1] == "split" and "n4" in line]
    assert fenced and split and float(split[0].split()[0]) < float(fenced[0].split()[0]), trace
    assert result.violation is None, trace


def test_a_status_write_landing_after_the_final_one_is_caught() -> None:
    """The fault campaign's seed 1823, scripted: daemons restarted gracefully while the status writes they make
    while stopping ("shutting down", groups still active) are slow to land (1.4 s each: the node still beats
    within ``dead_after``, and a write is in flight about three quarters of the time). With the writes ordered
    (the daemon as it is), one still in flight when the final status is written is dropped, and nobody fences
    the node; with the ordering taken out (the ``publish-out-of-order`` bug), it lands after the final status,
    the others see a node gone while holding groups, and the simulation reports a fence of a node that had
    stopped cleanly. Three restarts, so that at least one ends with a write in flight."""

    def setup(world: World) -> None:
        def stale_write_is_slow(node: str, func: Any, args: tuple[Any, ...]) -> float:
            doc = args[0] if args and isinstance(args[0], dict) else {}
            return 1.4 if doc.get("shutting_down") and not doc.get("stopped") else 0.0

        world.delay_of = stale_write_is_slow
        for at, node in ((25.0, "n2"), (45.0, "n3"), (65.0, "n4")):
            world.loop.call_later(at, world.fault, "restart", node, 8.0)

    params = Params(duration=200.0, faults=0)
    result = run(3, params, setup)
    assert sum("stopped cleanly" in line for line in result.trace) == 3, "\n".join(result.trace)
    assert result.violation is None, "\n".join(result.trace)
    with BUGS["publish-out-of-order"]():
        result = run(3, params, setup)
    assert result.violation and "stopped cleanly" in result.violation, "\n".join(result.trace)


def test_a_seed_replays_the_same_trace_byte_for_byte() -> None:
    args = ("--runs", "1", "--seed", "11", "--duration", "300", "--trace")
    first, second, other = sim(*args), sim(*args), sim(*args[:3], "12", *args[4:])
    trace = [line for line in first.stdout.splitlines() if "runs/CPU-s" not in line]
    assert len(trace) > 30 and any("fault" in line for line in trace), first.stdout  # it did something
    assert [line for line in second.stdout.splitlines() if "runs/CPU-s" not in line] == trace
    assert [line for line in other.stdout.splitlines() if "runs/CPU-s" not in line] != trace


#: the bugs random seeds must catch; publish-out-of-order needs a status write in flight at the very end of a
#: graceful stop, which random schedules rarely give (not in 60 seeds): its own scripted test above catches it
BY_RANDOM_SEEDS = sorted(set(BUGS) - {"publish-out-of-order"})


@pytest.mark.parametrize("bug", BY_RANDOM_SEEDS)
def test_a_deliberate_bug_is_caught_within_a_few_seeds(bug: str) -> None:
    done = sim("--bug", bug, "--runs", str(CATCH_WITHIN), "--seed", "0")
    assert done.returncode == 0, f"{bug} not caught in {CATCH_WITHIN} seeds:\n{done.stdout}{done.stderr}"
    assert f"bug {bug}: caught after" in done.stdout
    report = next(line for line in done.stdout.splitlines() if line.startswith("seed "))
    assert any(sign in report for sign in CAUGHT_AS[bug]), report  # the violation this bug leads to
    assert "VIOLATION" in done.stdout  # the seed, then a readable trace
