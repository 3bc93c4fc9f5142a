"""The fitness hook in the real daemon loop, on the simulated cluster: asked once per group per cycle, its veto
decided on and published.

A site's fitness plugin may do real work (read a licence file, ask a monitoring system); the daemon once asked it
twice each cycle, for the decision and again for the status it publishes. The status now carries what the
decision saw.
"""

from __future__ import annotations

from collections import Counter

from omha_core import hookimpl
from tests.sim.world import Params, World, run

VETOED = ("n1", "g03")


class CountingFitness:
    """Counts the calls per node; vetoes one group on one node."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @hookimpl
    def omha_node_fitness(self, group: str, node: str) -> str | None:
        self.calls[node] += 1
        return "licence expired" if (node, group) == VETOED else None


def test_fitness_is_asked_once_per_group_per_cycle_and_its_veto_is_published() -> None:
    plugin = CountingFitness()
    seen: dict[str, object] = {}

    def setup(world: World) -> None:
        world.pm.register(plugin, name="counting-fitness")
        seen["world"] = world

    params = Params(duration=60.0, faults=0)
    result = run(2, params, setup)
    assert result.violation is None, "\n".join(result.trace)
    world = seen["world"]
    assert isinstance(world, World)
    for node in world.names:
        published = world.store.status[node]
        cycles = published["seq"]  # one publish per cycle, no restart in this run
        assert cycles > 50, published
        # every cycle asks about each of the groups once (the status reuses the answer); twice would be ~2x
        assert plugin.calls[node] <= params.groups * (cycles + 1), (node, plugin.calls[node], cycles)
        assert plugin.calls[node] >= params.groups * (cycles - 1), (node, plugin.calls[node], cycles)
    node, group = VETOED
    assert world.store.status[node]["unfit"] == {group: "licence expired (counting-fitness)"}
    assert not any(f"{node} starts {group}" in line for line in result.trace), "\n".join(result.trace)
