"""The verdicts of ``tell --wait`` and ``status --check`` on cluster reports (the shape of ``omha.status/1``),
for the cases the multi-node tests do not stage: fencing that failed, a node lost, a group in transition."""

from __future__ import annotations

from typing import Any

from omha_core.cli_operator import CRITICAL, OK, WARNING, at_level, blocked, nagios_check


def report(nodes: dict[str, str], groups: dict[str, dict[str, Any]], quorum: bool | None = True) -> dict[str, Any]:
    return {
        "schema": "omha.status/1",
        "observer": "n1",
        "stale": None,
        "quorum": {"have": quorum, "detail": "2 of 3 expected nodes"},
        "nodes": {n: {"state": s, "standby": False} for n, s in nodes.items()},
        "groups": {
            g: {"want": "run", "running_on": [], "instances": {}, "why": None, "prefer": None, **v}
            for g, v in groups.items()
        },
        "config": {"errors": []},
    }


def inst(level: str, state: str) -> dict[str, Any]:
    return {"level": level, "state": state, "since": 0.0, "entries": {}}


def test_fencing_failed_blocks_and_is_critical() -> None:
    rep = report(
        {"n1": "up", "n2": "fence-failed"},
        {"web": {"why": "fencing n2 pending (it held the group when it was lost)"}},
    )
    code, message = blocked(rep, "web", "run") or ("", "")
    assert code == "fence-failed" and "fencing n2 failed" in message
    verdict, summary, perf = nagios_check(rep)
    assert verdict == CRITICAL and "fencing n2 failed" in summary and "web running nowhere" in summary
    assert perf == {"nodes_up": 1, "nodes": 2, "groups_ok": 0, "groups_wanted": 1}


def test_fencing_in_progress_does_not_block() -> None:
    rep = report({"n1": "up", "n2": "fencing"}, {"web": {"why": "fencing n2 pending (it held the group)"}})
    assert blocked(rep, "web", "run") is None


def test_a_level_not_yet_adopted_neither_reaches_nor_blocks() -> None:
    rep = report({"n1": "up"}, {"web": {"want": "2", "why": "no fit node"}})
    assert at_level(rep, "web", "run") is None and blocked(rep, "web", "run") is None


def test_at_level_only_once_settled_on_a_live_node() -> None:
    starting = report({"n1": "up"}, {"web": {"instances": {"n1": inst("run", "STARTING")}, "running_on": ["n1"]}})
    assert at_level(starting, "web", "run") is None
    assert nagios_check(starting)[0] == WARNING
    done = report({"n1": "up"}, {"web": {"instances": {"n1": inst("run", "DONE")}, "running_on": ["n1"]}})
    assert at_level(done, "web", "run") == ["n1"]
    assert nagios_check(done) == (
        OK,
        "1/1 nodes up, 1/1 groups at level",
        {
            "nodes_up": 1,
            "nodes": 1,
            "groups_ok": 1,
            "groups_wanted": 1,
        },
    )


def test_a_lost_node_is_a_warning_while_every_group_runs() -> None:
    rep = report({"n1": "up", "n2": "fenced"}, {"web": {"instances": {"n1": inst("run", "DONE")}}})
    code, summary, _ = nagios_check(rep)
    assert code == WARNING and "node n2 fenced" in summary


def test_a_group_missing_from_the_cltab_blocks() -> None:
    rep = report({"n1": "up"}, {"ghost": {"why": "not defined in cltab"}})
    assert blocked(rep, "ghost", "run") == ("undefined", "ghost is not defined in the cltab in force")
