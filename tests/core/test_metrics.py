"""Metrics counted from the notification hooks, and the page's timeline, fed the way the daemon feeds them."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from omha_core.metrics import Metrics
from omha_core.plugins import get_plugin_manager
from omha_core.web.timeline import Timeline


def samples(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_hooks_count_failovers_moves_and_fence_results() -> None:
    now = [100.0]
    m = Metrics(lambda: None, clock=lambda: now[0])
    pm = get_plugin_manager()
    pm.register(m, name="omha-metrics")  # as the daemon does: the hooks reach it like any plugin
    pm.hook.omha_node_lost(node="n3", observer="n1", groups=["web"])
    pm.hook.omha_fence_failed(node="n3", errors=["pdu: timeout"])
    now[0] = 104.5
    pm.hook.omha_group_moved(group="web", from_node="n3", to_node="n1", level="run")
    pm.hook.omha_group_moved(group="db", from_node="n2", to_node="n1", level="run")  # n2 was never lost
    pm.hook.omha_group_moved(group="new", from_node=None, to_node="n1", level="run")  # a first start
    got = samples(m)
    assert got[("omha_failovers_total", (("group", "web"),))] == 1
    assert got[("omha_failover_seconds_sum", ())] == 4.5
    assert got[("omha_group_moves_total", (("group", "db"),))] == 1
    assert ("omha_failovers_total", (("group", "new"),)) not in got
    assert got[("omha_fence_attempts_total", (("node", "n3"), ("result", "failed")))] == 1
    assert got[("omha_node_losses_total", (("node", "n3"),))] == 1
    assert not any(name.endswith("_created") for name, _ in got)


def report(web_on: list[str], states: dict[str, str]) -> dict[str, Any]:
    return {
        "nodes": {n: {"state": s} for n, s in states.items()},
        "groups": {"web": {"want": "run", "running_on": web_on, "instances": {}}},
    }


def test_timeline_records_losses_fences_and_failovers_once() -> None:
    t = Timeline(clock=lambda: 50.0)
    old = {"n9": {"node": "n9", "incarnation": "a", "time": 10.0, "ok": True, "by": "n1", "device": "pdu"}}
    t.update(report(["n2"], {"n1": "up", "n2": "up"}), old)
    assert [e["kind"] for e in t.as_list()] == ["fence"]  # the first report is the baseline; records are history
    t.update(report([], {"n1": "up", "n2": "lost"}), old)
    fenced = {**old, "n2": {"incarnation": "b", "time": 49.0, "ok": True, "by": "n1", "device": "pdu"}}
    t.update(report(["n1"], {"n1": "up", "n2": "fenced"}), fenced)
    t.update(report(["n1"], {"n1": "up", "n2": "fenced"}), fenced)  # nothing new
    kinds = [(e["kind"], e.get("node") or e.get("group")) for e in t.as_list()]
    assert kinds == [("fence", "n9"), ("fence", "n2"), ("node-lost", "n2"), ("failover", "web")]
    failover = t.as_list()[-1]
    assert (failover["from"], failover["to"]) == ("n2", "n1")
