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
    add: list[str] | None = None,
    vip: bool = False,
    mount: bool = False,
    netns: bool = False,
    out: Callable[[str], None] = print,
) -> Report:
    """Run the campaign of ``seed`` under ``base`` and check it; prints the seed first and the figures last.

    On a violation it prints, for each, the claim, the seed, the schedule and the timeline around it."""
    weights = {k: nemesis.DEFAULT_WEIGHTS.get(k, 2) for k in kinds} if kinds else dict(nemesis.DEFAULT_WEIGHTS)
    if not kinds:
        weights.update(nemesis.ETCD_WEIGHTS if store == "etcd" else nemesis.SHAREDFS_WEIGHTS)
    weights.update({k: nemesis.OPTIONAL_WEIGHTS.get(k, 1) for k in add or []})
    run = Campaign(base, Options(seed, duration, nodes, groups, store, vip=vip, mount=mount, netns=netns,
                               weights=weights), out)
    extra = " ".join([*(["--vip"] if vip else []), *(["--mount"] if mount else []), *(["--netns"] if netns else []),
                      *([f"--add {','.join(add)}"] if add else [])])
    out(f"chaos: seed {seed} (replay: make chaos SEED={seed} DURATION={duration:g} STORE={store}"
        + (f" CHAOS_ARGS='{extra}'" if extra else "") + ")")
    run.run()
    rep = check(base)
    out(rep.summary())
    if rep.violations:
        out(f"VIOLATIONS with seed {seed}; the schedule:\n{nemesis.describe(run.faults)}")
        for v in rep.violations:
            out(f"--- {v.claim} at {v.at - rep.t0:.3f}s: {v.what}\n{rep.around(v.at)}")
    return rep
