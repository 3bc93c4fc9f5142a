"""Prometheus metrics of one daemon, served at ``/metrics`` when ``[http] listen`` is set.

Two kinds:

- what this daemon *did*, counted as it happens: decision cycles (a histogram of their duration), failovers it
  carried out (``omha_failovers_total``, ``omha_failover_seconds``: from the moment this node declared the old
  holder lost until the group reached its level here), fence attempts it made and their result. Sum them over
  the nodes (``sum without(instance)``);
- the cluster as the freshest status shows it (the same report as ``omha status --json``), taken at scrape
  time: per node up/lost and fenced, per group its wanted level, the state of each instance and where it runs.
  Every node exports the same view; use ``max without(instance)``.

The counters come in through the notification hooks: :class:`Metrics` is registered in the daemon's plugin
manager like any plugin (``omha-metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omha_core._version import __version__
from omha_core.hookspecs import hookimpl

#: decision-cycle durations: a cycle is a few milliseconds to a few heartbeats (store calls in threads)
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: failover durations: from a fraction of a second (no fencing) to minutes (slow devices, retries)
FAILOVER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
#: a loss older than this is not the cause of a group's move (a node lost long ago, back, lost again...)
LOSS_MEMORY = 3600.0

Report = Mapping[str, Any]


class ClusterCollector(Collector):
    """Gauges built at scrape time from the cluster report (see the module docstring)."""

    def __init__(self, report: Callable[[], Report | None]) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        rep = self.report()
        info = GaugeMetricFamily("omha_build_info", "omha version of this daemon", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        if rep is None:
            return
        quorum = GaugeMetricFamily("omha_quorum", "1 when the freshest view holds quorum")
        quorum.add_metric([], 1 if (rep.get("quorum") or {}).get("have") else 0)
        yield quorum
        up = GaugeMetricFamily("omha_node_up", "1 when the node heartbeats, 0 when lost or stopped", labels=["node"])
        fenced = GaugeMetricFamily("omha_node_fenced", "1 when the node was fenced since it was lost", labels=["node"])
        state = GaugeMetricFamily("omha_node_state", "the node's state (label state) is 1", labels=["node", "state"])
        for name, node in sorted((rep.get("nodes") or {}).items()):
            st = str(node.get("state"))
            up.add_metric([name], 1 if st == "up" else 0)
            fenced.add_metric([name], 1 if st == "fenced" else 0)
            state.add_metric([name, st], 1)
        yield from (up, fenced, state)
        wanted = GaugeMetricFamily(
            "omha_group_wanted",
            "1 for the level hactl wants the group at (stop: wanted nowhere)",
            labels=["group", "level"],
        )
        running = GaugeMetricFamily(
            "omha_group_running", "1 on each node where the group runs at its wanted level", labels=["group", "node"]
        )
        placed = GaugeMetricFamily(
            "omha_group_nodes", "number of nodes the group runs on (1 is healthy)", labels=["group"]
        )
        inst = GaugeMetricFamily(
            "omha_group_state", "1 for each instance of the group: its level and state on a node",
            labels=["group", "node", "level", "state"],
        )
        for group, g in sorted((rep.get("groups") or {}).items()):
            wanted.add_metric([group, str(g.get("want") or "stop")], 1)
            nodes = list(g.get("running_on") or [])
            placed.add_metric([group], len(nodes))
            for node in nodes:
                running.add_metric([group, node], 1)
            for node, i in sorted((g.get("instances") or {}).items()):
                inst.add_metric([group, node, str(i.get("level")), str(i.get("state"))], 1)
        yield from (wanted, running, placed, inst)


class Metrics:
    """This daemon's metrics registry; also a plugin whose notification hooks count failovers and fencing."""

    def __init__(self, report: Callable[[], Report | None], clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        disable_created_metrics()  # no *_created series: they double the exposition for nothing a graph uses
        self.registry = CollectorRegistry(auto_describe=True)
        self.cycle_seconds = Histogram(
            "omha_decision_cycle_seconds",
            "duration of one decision cycle of this daemon (store read, decisions, status published)",
            buckets=CYCLE_BUCKETS,
            registry=self.registry,
        )
        self.failover_seconds = Histogram(
            "omha_failover_seconds",
            "from this node declaring a group's holder lost to the group at its level here",
            buckets=FAILOVER_BUCKETS,
            registry=self.registry,
        )
        self.failovers = Counter(
            "omha_failovers", "groups this node took over from a lost node", ["group"], registry=self.registry
        )
        self.moves = Counter(
            "omha_group_moves", "groups this node took over from a node that was not lost (a planned move)",
            ["group"], registry=self.registry,
        )
        self.fence_attempts = Counter(
            "omha_fence_attempts",
            "fence attempts made by this node (one pass over the devices), by result: ok or failed",
            ["node", "result"],
            registry=self.registry,
        )
        self.nodes_lost = Counter(
            "omha_node_losses",
            "losses of a node holding groups, as this node saw them",
            ["node"],
            registry=self.registry,
        )
        self.registry.register(ClusterCollector(report))
        self.lost_at: dict[str, float] = {}

    def render(self) -> bytes:
        """The exposition in the Prometheus text format (version 0.0.4)."""
        return generate_latest(self.registry)

    # -- notification hooks (see omha_core/hookspecs.py) ----------------------------------------------------
    @hookimpl
    def omha_node_lost(self, node: str, observer: str, groups: list[str]) -> None:
        self.lost_at[node] = self.clock()
        self.nodes_lost.labels(node=node).inc()

    @hookimpl
    def omha_node_fenced(self, node: str, device: str, action: str, result: Any) -> None:
        self.fence_attempts.labels(node=node, result="ok").inc()

    @hookimpl
    def omha_fence_failed(self, node: str, errors: list[str]) -> None:
        self.fence_attempts.labels(node=node, result="failed").inc()

    @hookimpl
    def omha_group_moved(self, group: str, from_node: str | None, to_node: str, level: str) -> None:
        if from_node is None or from_node == to_node:
            return
        lost = self.lost_at.get(from_node)
        if lost is not None and self.clock() - lost < LOSS_MEMORY:
            self.failovers.labels(group=group).inc()
            self.failover_seconds.observe(self.clock() - lost)
        else:
            self.moves.labels(group=group).inc()
