"""One campaign from start to verdict: :func:`campaign` runs the harness, then the checker, and prints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.chaos import nemesis
from tests.chaos.checker import Report, check
from tests.chaos.harness import Campaign, Options


def campaign(
    base: Path,
    seed: int,
    duration: float,
    *,
    store: str = "sharedfs",
    nodes: int = 5,
    groups: int = 3,
    kinds: list[str] | None = None,
    vip: bool = False,
    mount: bool = False,
    out: Callable[[str], None] = print,
) -> Report:
    """Run the campaign of ``seed`` under ``base`` and check it; prints the seed first and the figures last.

    On a violation it prints, for each, the claim, the seed, the schedule and the timeline around it."""
    weights = {k: nemesis.DEFAULT_WEIGHTS.get(k, 2) for k in kinds} if kinds else dict(nemesis.DEFAULT_WEIGHTS)
    if not kinds:
        weights.update(nemesis.ETCD_WEIGHTS if store == "etcd" else nemesis.SHAREDFS_WEIGHTS)
    run = Campaign(base, Options(seed, duration, nodes, groups, store, vip=vip, mount=mount,
                               weights=weights), out)
    out(f"chaos: seed {seed} (replay: make chaos SEED={seed} DURATION={duration:g} STORE={store})")
    run.run()
    rep = check(base)
    out(rep.summary())
    if rep.violations:
        out(f"VIOLATIONS with seed {seed}; the schedule:\n{nemesis.describe(run.faults)}")
        for v in rep.violations:
            out(f"--- {v.claim} at {v.at - rep.t0:.3f}s: {v.what}\n{rep.around(v.at)}")
    return rep
