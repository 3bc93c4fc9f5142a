"""decide()'s ranking shortcuts (:mod:`omha_core.ranking`) pick exactly what sorting every candidate by
``rank_key`` picks."""

from __future__ import annotations

import random

from omha_core.ranking import Loads, rank, rank_key


def sorted_rank(group: str, candidates: list[str], load: dict[str, int], me: str) -> tuple[str, int | None]:
    ranked = sorted(candidates, key=lambda n: rank_key(group, n, load.get(n, 0)))
    return ranked[0], ranked.index(me) if me in ranked else None


def test_rank_agrees_with_sorting_by_rank_key_on_random_loads_and_ties() -> None:
    rnd = random.Random(19)
    for trial in range(400):
        nodes = [f"n{i}" for i in range(rnd.randint(1, 30))]
        load = {n: rnd.randint(0, 3) for n in nodes if rnd.random() < 0.9}  # some nodes carry no count at all
        candidates = rnd.sample(nodes, rnd.randint(1, len(nodes)))
        me = rnd.choice(nodes)
        group = f"g{trial}"
        assert rank(group, candidates, load, me) == sorted_rank(group, candidates, load, me)


def test_the_load_buckets_agree_with_sorting_as_a_cycle_assigns_groups() -> None:
    """decide() ranks each group among every eligible node from :class:`Loads`' buckets, then adds the group to the
    winner (or to an operator's preferred node): the buckets must follow, group after group."""
    rnd = random.Random(23)
    for trial in range(200):
        nodes = [f"n{i}" for i in range(rnd.randint(1, 25))]
        eligible = [n for n in nodes if rnd.random() < 0.8] or nodes[:1]
        counts = {n: rnd.randint(0, 2) for n in nodes if rnd.random() < 0.9}
        loads = Loads(counts, eligible)
        me = rnd.choice(nodes)
        for g in range(30):
            group = f"g{trial}.{g}"
            expected = sorted_rank(group, eligible, dict(counts), me)
            assert loads.rank_eligible(group, me) == expected, (trial, g)
            # mostly the winner takes it; sometimes another node (a preferred target, or one not eligible)
            loads.add(expected[0] if rnd.random() < 0.8 else rnd.choice(nodes))
        assert loads.counts is counts
