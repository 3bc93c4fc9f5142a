"""The deterministic simulation (tests/sim/world.py) on a fixed seed set, and proof that it catches bugs.

Five real daemons, twenty groups, ten simulated minutes per seed, with crashes, freezes, store partitions,
membership splits, failing fence devices, clock skew and cltab/hactl changes. Timings go to bench/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import pytest

from tests.sim.bugs import BUGS
from tests.sim.world import Params, run

#: the fixed seed set CI runs (about 2.5 CPU-s each)
SEEDS = range(6)
#: a deliberate bug must break an invariant within this many seeds (each was caught at seed 0 on 2026-12-05)
CATCH_WITHIN = 3


@pytest.mark.parametrize("seed", SEEDS)
def test_every_invariant_holds_on_the_fixed_seeds(seed: int) -> None:
    result = run(seed)
    assert result.violation is None, result.report()


def test_a_seed_replays_the_same_trace_byte_for_byte() -> None:
    params = Params(duration=300.0, faults=4)
    first, second = run(11, params), run(11, params)
    assert len(first.trace) > 30  # the run did things: boots, starts, faults
    assert "\n".join(first.trace) == "\n".join(second.trace)
    assert "\n".join(run(12, params).trace) != "\n".join(first.trace)


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_deliberate_bug_is_caught_within_a_few_seeds(bug: str) -> None:
    make: Callable[[], AbstractContextManager[None]] = BUGS[bug]
    with make():
        results = []
        for seed in range(CATCH_WITHIN):
            results.append(run(seed))
            if results[-1].violation:
                break
    caught = results[-1]
    assert caught.violation is not None, f"{bug} not caught in {CATCH_WITHIN} seeds"
    report = caught.report()
    assert report.startswith(f"seed {caught.seed}: ") and "VIOLATION" in report


def test_the_bugs_are_gone_once_their_patch_is_undone() -> None:
    for make in BUGS.values():
        with make():
            pass
    assert run(0).violation is None
