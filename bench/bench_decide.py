"""Cost of one decision cycle (:func:`omha_core.decide.decide`) on synthetic cluster views.

Two shapes from issue 4: 10 nodes x 100 groups and 100 nodes x 1,000 groups. Half of the groups run (spread
over the nodes, claimed), a quarter are wanted and running nowhere (so ranking and spreading work), a quarter are
mid-transition on this node. Median of repeated calls, per view, on this node's perspective.
"""

from __future__ import annotations

import statistics
import time

from omha_core.cltab import parse_cltab
from omha_core.decide import Instance, NodeView, View, decide


def make_view(n_nodes: int, n_groups: int) -> View:
    nodes = [f"n{i}" for i in range(n_nodes)]
    groups = [f"g{i}" for i in range(n_groups)]
    cltab = parse_cltab("".join(f"{g}:{g}t:test:test:true\n{g}:{g}r:run:respawn:sleep 1\n" for g in groups))
    per_node: dict[str, dict[str, Instance]] = {n: {} for n in nodes}
    claims = {}
    for i, g in enumerate(groups):
        if i % 4 < 2:  # running somewhere
            n = nodes[i % n_nodes]
            per_node[n][g] = Instance("run", "DONE")
            claims[g] = n
        elif i % 4 == 2:  # in transition on me
            per_node[nodes[0]][g] = Instance("test", "STARTING")
            claims[g] = nodes[0]
    views = {n: NodeView(n, groups=per_node[n]) for n in nodes}
    return View(nodes[0], views, dict.fromkeys(groups, "run"), cltab, claims)


def main() -> None:
    for n_nodes, n_groups, reps in ((10, 100, 200), (100, 1000, 20)):
        view = make_view(n_nodes, n_groups)
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            decision = decide(view)
            samples.append(time.perf_counter() - t0)
        print(
            f"{n_nodes:>3} nodes x {n_groups:>4} groups: median {statistics.median(samples) * 1000:.2f} ms, "
            f"max {max(samples) * 1000:.2f} ms ({reps} runs, {len(decision.actions)} actions)"
        )


if __name__ == "__main__":
    main()
