"""The deterministic simulation (tests/sim/world.py) on a fixed seed set, and proof that it catches bugs.

Five real daemons, twenty groups, ten simulated minutes per seed, with crashes, freezes, store partitions,
membership splits, failing fence devices, clock skew and cltab/hactl changes. Each run is a ``python -m
tests.sim`` process, which fixes ``PYTHONHASHSEED`` (the daemon iterates over sets of node names), so that a seed
means the same run in every process. Timings go to bench/README.md, not here.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.sim.bugs import BUGS

#: the fixed seed set CI runs (about 2.5 CPU-s each)
SEEDS, FIRST = 5, 0
#: a deliberate bug must break an invariant within this many seeds from seed 0 (2026-12-06: each at the first
#: seed; ignore-quorum took six while the minority check looked at a fence call's landing instead of its start)
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
    """Seed 26: n2 starts fencing n4 (lost: cut off from the store) while quorate; the device's latency lands the
    power-off 1.7 s later, after a membership split has put n2 in a minority. The fence was the quorum's decision
    and stands (as a started fence does in Pacemaker); the checker once called it a fence from a minority."""
    done = sim("--runs", "1", "--seed", "26", "--duration", "300", "--trace")
    assert "n2 fences n4: off" in done.stdout and "split ['n2', 'n3']" in done.stdout, done.stdout  # still the case
    assert done.returncode == 0 and "0 with a violation" in done.stdout, done.stdout


def test_a_seed_replays_the_same_trace_byte_for_byte() -> None:
    args = ("--runs", "1", "--seed", "11", "--duration", "300", "--trace")
    first, second, other = sim(*args), sim(*args), sim(*args[:3], "12", *args[4:])
    trace = [line for line in first.stdout.splitlines() if "runs/CPU-s" not in line]
    assert len(trace) > 30 and any("fault" in line for line in trace), first.stdout  # it did something
    assert [line for line in second.stdout.splitlines() if "runs/CPU-s" not in line] == trace
    assert [line for line in other.stdout.splitlines() if "runs/CPU-s" not in line] != trace


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_deliberate_bug_is_caught_within_a_few_seeds(bug: str) -> None:
    done = sim("--bug", bug, "--runs", str(CATCH_WITHIN), "--seed", "0")
    assert done.returncode == 0, f"{bug} not caught in {CATCH_WITHIN} seeds:\n{done.stdout}{done.stderr}"
    assert f"bug {bug}: caught after" in done.stdout
    report = done.stdout.split("\n", 1)[0]
    assert report.startswith("seed ") and "VIOLATION" in done.stdout  # the seed, then a readable trace
