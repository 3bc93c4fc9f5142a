"""decide()'s ranking shortcut (``_rank``) picks exactly what sorting every candidate by ``rank_key`` picks."""

from __future__ import annotations

import random

from omha_core.decide import _rank, rank_key


def test_rank_agrees_with_sorting_by_rank_key_on_random_loads_and_ties() -> None:
    rnd = random.Random(19)
    for trial in range(400):
        nodes = [f"n{i}" for i in range(rnd.randint(1, 30))]
        load = {n: rnd.randint(0, 3) for n in nodes if rnd.random() < 0.9}  # some nodes carry no count at all
        candidates = rnd.sample(nodes, rnd.randint(1, len(nodes)))
        me = rnd.choice(nodes)
        group = f"g{trial}"
        ranked = sorted(candidates, key=lambda n: rank_key(group, n, load.get(n, 0)))
        expected = (ranked[0], ranked.index(me) if me in ranked else None)
        assert _rank(group, candidates, load, me) == expected
