"""The decision function, case by case: every branch of the original's scangroups, plus claims, fencing,
quorum, fitness and spreading."""

from __future__ import annotations

import itertools

import pytest

from omha_core.cltab import parse_cltab
from omha_core.decide import Action, Instance, NodeView, View, decide

CLTAB = parse_cltab(
    """
web:check:test:test:true
web:srv:run:respawn:sleep 100
db:dbsrv:run,2:respawn:sleep 100
"""
)


def view(
    me: str = "n1",
    mine: dict[str, tuple[str | None, str]] | None = None,
    others: dict[str, dict[str, tuple[str | None, str]]] | None = None,
    wanted: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
    lost: tuple[str, ...] = (),
    fenced: tuple[str, ...] = (),
    **kw: object,
) -> View:
    nodes = {me: NodeView(me, groups={g: Instance(*v) for g, v in (mine or {}).items()})}
    for name, groups in (others if others is not None else {"n2": {}, "n3": {}}).items():
        nodes[name] = NodeView(
            name,
            alive=name not in lost,
            fenced=name in fenced,
            groups={g: Instance(*v) for g, v in groups.items()},
        )
    return View(me, nodes, wanted if wanted is not None else {"web": "run"}, CLTAB, claims or {}, **kw)  # type: ignore[arg-type]


def acts(v: View) -> list[tuple[str, str, str | None]]:
    return [(a.kind, a.group, a.level) for a in decide(v).actions]


def best_node(group: str, nodes: list[str]) -> str:
    """Which node is the first choice for a group when all are equally loaded."""
    for n in nodes:
        if acts(view(me=n, others={m: {} for m in nodes if m != n}, wanted={group: "run"})):
            return n
    raise AssertionError("nobody starts it")


# (1) running here, gone from hactl or set to stop
@pytest.mark.parametrize("wanted", [{}, {"web": "stop"}])
def test_removed_from_hactl_stops_here(wanted: dict[str, str]) -> None:
    assert acts(view(mine={"web": ("run", "DONE")}, wanted=wanted, claims={"web": "n1"})) == [("tell", "web", "stop")]


def test_stopped_group_releases_its_claim() -> None:
    assert acts(view(mine={"web": ("stop", "DONE")}, wanted={}, claims={"web": "n1"})) == [("release", "web", None)]
    # while still stopping, the claim is kept
    assert acts(view(mine={"web": ("stop", "STOPPING")}, wanted={}, claims={"web": "n1"})) == []


# (2) running here and elsewhere
def test_conflict_claim_holder_keeps_it() -> None:
    others = {"n2": {"web": ("run", "DONE")}}
    assert acts(view(mine={"web": ("run", "DONE")}, others=others, claims={"web": "n2"})) == [("tell", "web", "stop")]
    assert acts(view(mine={"web": ("run", "DONE")}, others=others, claims={"web": "n1"})) == []


def test_conflict_without_claim_lowest_name_keeps_it() -> None:
    others = {"n0": {"web": ("run", "DONE")}}
    assert acts(view(mine={"web": ("run", "DONE")}, others=others)) == [("tell", "web", "stop")]
    others = {"n2": {"web": ("run", "DONE")}}
    assert acts(view(mine={"web": ("run", "DONE")}, others=others)) == [("claim", "web", None)]


def test_running_here_but_claimed_elsewhere_stops() -> None:
    """A node that was taken over (fenced, claims broken, re-claimed) and comes back stops its copy."""
    assert acts(view(mine={"web": ("run", "DONE")}, claims={"web": "n3"})) == [("tell", "web", "stop")]


# (3) test passed / no tests
def test_test_passed_goes_to_hactl_level() -> None:
    assert acts(view(mine={"web": ("test", "PASSED")}, claims={"web": "n1"})) == [("tell", "web", "run")]


def test_no_test_entries_done_goes_to_hactl_level() -> None:
    v = view(mine={"db": ("test", "DONE")}, wanted={"db": "2"}, claims={"db": "n1"})
    assert acts(v) == [("tell", "db", "2")]


def test_test_done_with_tests_waits_for_passed() -> None:
    assert acts(view(mine={"web": ("test", "DONE")}, claims={"web": "n1"})) == []


# (4) test failed
def test_test_failed_stops_and_remembers() -> None:
    assert acts(view(mine={"web": ("test", "FAILED")}, claims={"web": "n1"})) == [
        ("failed", "web", None),
        ("tell", "web", "stop"),
    ]


def test_wait_entry_failed_at_level_moves_group() -> None:
    assert acts(view(mine={"web": ("run", "FAILED")}, claims={"web": "n1"}))[0] == ("failed", "web", None)


def test_node_that_failed_is_not_chosen_while_others_remain() -> None:
    nodes = {"n1": NodeView("n1", failed={"web": "test FAILED"}), "n2": NodeView("n2"), "n3": NodeView("n3")}
    starters = [me for me in nodes if acts(View(me, nodes, {"web": "run"}, CLTAB, waiting={"web": 100.0}))]
    assert starters and "n1" not in starters


def test_all_failed_says_why() -> None:
    nodes = {n: NodeView(n, failed={"web": "test FAILED"}) for n in ("n1", "n2")}
    d = decide(View("n1", nodes, {"web": "run"}, CLTAB))
    assert d.actions == [] and d.why["web"] == "no fit node (test FAILED on n1; test FAILED on n2)"


# (5) plan done
def test_plan_done_goes_to_test() -> None:
    assert acts(view(mine={"web": ("plan", "DONE")}, claims={"web": "n1"})) == [("tell", "web", "test")]


def test_plan_failed_stops_and_remembers() -> None:
    d = decide(view(mine={"web": ("plan", "FAILED")}, claims={"web": "n1"}))
    assert [(a.kind, a.group, a.level, a.reason) for a in d.actions] == [
        ("failed", "web", None, "plan FAILED"),
        ("tell", "web", "stop", "plan FAILED here"),
    ]


def test_wait_entry_failed_at_run_level_stops_and_remembers() -> None:
    d = decide(view(mine={"web": ("run", "FAILED")}, claims={"web": "n1"}))
    assert [(a.kind, a.level, a.reason) for a in d.actions] == [
        ("failed", None, "FAILED at level run"),
        ("tell", "stop", "FAILED at level run here"),
    ]


# (6) needs plan
def test_wanted_and_nowhere_best_node_claims_and_plans() -> None:
    best = best_node("web", ["n1", "n2", "n3"])
    for n in ("n1", "n2", "n3"):
        others = {m: {} for m in ("n1", "n2", "n3") if m != n}
        expected = [("claim", "web", None), ("tell", "web", "plan")] if n == best else []
        assert acts(view(me=n, others=others)) == expected


def test_next_best_takes_over_after_waiting() -> None:
    nodes = ["n1", "n2", "n3"]
    best = best_node("web", nodes)
    other = next(n for n in nodes if n != best)
    v = view(me=other, others={m: {} for m in nodes if m != other}, waiting={"web": 10.0}, spread_delay=2.0)
    assert acts(v) == [("claim", "web", None), ("tell", "web", "plan")]
    v = view(me=other, others={m: {} for m in nodes if m != other}, waiting={"web": 0.5}, spread_delay=2.0)
    assert acts(v) == [] and "waiting for" in decide(v).why["web"]


def test_claimed_by_another_is_left_alone() -> None:
    d = decide(view(claims={"web": "n2"}, waiting={"web": 99.0}))
    assert d.actions == [] and d.why["web"] == "claimed by n2, starting there"


def test_settling_starts_nothing() -> None:
    d = decide(view(me="n1", others={}, settling=True))
    assert d.actions == [] and "starting up" in d.why["web"]


def test_not_in_cltab_is_reported() -> None:
    d = decide(view(wanted={"ghost": "run"}, others={}))
    assert d.actions == [] and d.why["ghost"] == "not defined in cltab"


def test_spreading_over_nodes() -> None:
    """Ten groups on three idle nodes: every node simulates the same assignment and starts its share."""
    groups = [f"g{i}" for i in range(10)]
    cltab = parse_cltab("".join(f"{g}:{g}t:run:respawn:sleep 1\n" for g in groups))
    nodes = {n: NodeView(n) for n in ("n1", "n2", "n3")}
    started: dict[str, list[str]] = {}
    for me in nodes:
        v = View(me, nodes, dict.fromkeys(groups, "run"), cltab)
        started[me] = [a.group for a in decide(v).actions if a.kind == "claim"]
    assert sorted(itertools.chain(*started.values())) == sorted(groups)  # each exactly once
    assert all(3 <= len(s) <= 4 for s in started.values()), started


def test_unfit_node_is_skipped_with_reason() -> None:
    nodes = {"n1": NodeView("n1", unfit={"web": "maintenance (site)"}), "n2": NodeView("n2", alive=False)}
    d = decide(View("n1", nodes, {"web": "run"}, CLTAB))
    assert d.actions == [] and d.why["web"] == "no fit node (n1 unfit: maintenance (site))"


# (7) in transition
@pytest.mark.parametrize("state", ["STARTING", "STOPPING"])
def test_in_transition_waits(state: str) -> None:
    assert acts(view(mine={"web": ("run", state)}, claims={"web": "n1"})) == []


# (8) level changed in hactl
def test_hactl_level_change_applied_in_place() -> None:
    v = view(mine={"db": ("run", "DONE")}, wanted={"db": "2"}, claims={"db": "n1"})
    assert acts(v) == [("tell", "db", "2")]


def test_running_at_wanted_level_does_nothing() -> None:
    assert acts(view(mine={"web": ("run", "DONE")}, claims={"web": "n1"})) == []


# fencing
def test_lost_unfenced_holder_blocks_takeover() -> None:
    v = view(others={"n2": {"web": ("run", "DONE")}, "n3": {}}, lost=("n2",), claims={"web": "n2"})
    d = decide(v)
    assert d.actions == [] and d.why["web"].startswith("fencing n2 pending")


def test_lost_holder_without_claim_still_blocks() -> None:
    v = view(others={"n2": {"web": ("run", "DONE")}, "n3": {}}, lost=("n2",), waiting={"web": 99.0})
    assert decide(v).actions == []


def test_fenced_holder_with_broken_claim_is_taken_over() -> None:
    v = view(others={"n2": {"web": ("run", "DONE")}, "n3": {}}, lost=("n2",), fenced=("n2",), waiting={"web": 99.0})
    assert ("claim", "web", None) in acts(v)


def test_fenced_holder_claim_not_yet_broken_waits() -> None:
    v = view(others={"n2": {"web": ("run", "DONE")}}, lost=("n2",), fenced=("n2",), claims={"web": "n2"})
    assert decide(v).actions == []


# quorum
def test_quorum_lost_stops_everything_and_starts_nothing() -> None:
    v = view(mine={"web": ("run", "DONE")}, wanted={"web": "run", "db": "run"}, claims={"web": "n1"}, quorum=False)
    assert acts(v) == [("tell", "web", "stop")]
    assert decide(v).why["db"] == "no quorum"
    v = view(mine={"web": ("stop", "DONE")}, claims={"web": "n1"}, quorum=False)
    assert acts(v) == [("release", "web", None)]


def test_node_without_quorum_is_no_candidate() -> None:
    nodes = {"n1": NodeView("n1", quorum=False), "n2": NodeView("n2")}
    assert decide(View("n2", nodes, {"web": "run"}, CLTAB)).actions == [
        Action("claim", "web", None, "wanted and running nowhere"),
        Action("tell", "web", "plan", "claimed"),
    ]


def test_restarted_daemon_resumes_its_claim_once_settled() -> None:
    assert acts(view(mine={}, claims={"web": "n1"})) == [("tell", "web", "plan")]
    settling = decide(view(mine={}, claims={"web": "n1"}, settling=True))
    assert settling.actions == [] and "once settled" in settling.why["web"]


@pytest.mark.parametrize("wanted", [{"web": "run"}, {}])
def test_a_failed_stop_keeps_the_claim_and_starts_nothing(wanted: dict[str, str]) -> None:
    d = decide(view(mine={"web": ("stop", "FAILED")}, claims={"web": "n1"}, wanted=wanted))
    assert d.actions == [] and d.why["web"].startswith("stop FAILED here: keeping the claim")
    # the others see the group still held there, even with no claim left: nobody starts it while its node lives
    nodes = {"n1": NodeView("n1", groups={"web": Instance("stop", "FAILED")}), "n2": NodeView("n2")}
    assert decide(View("n2", nodes, {"web": "run"}, CLTAB, {}, waiting={"web": 100.0})).actions == []


# operators' standing orders: omha move (prefer) and omha standby
def test_moved_group_stops_on_its_holder_when_the_target_can_run_it() -> None:
    v = view(mine={"web": ("run", "DONE")}, claims={"web": "n1"}, prefer={"web": "n2"})
    d = decide(v)
    assert [(a.kind, a.level) for a in d.actions] == [("tell", "stop")]
    assert "moving to n2" in d.actions[0].reason
    # once stopped, the holder releases its claim, so that the target can take it: stop before the other starts
    v = view(mine={"web": ("stop", "DONE")}, claims={"web": "n1"}, prefer={"web": "n2"})
    assert acts(v) == [("release", "web", None)]
    # while still stopping, the claim is kept
    assert acts(view(mine={"web": ("stop", "STOPPING")}, claims={"web": "n1"}, prefer={"web": "n2"})) == []


def test_moved_group_is_claimed_only_by_its_target() -> None:
    # n2 is the target: it claims at once, whatever the ranking
    assert acts(view(me="n2", others={"n1": {}, "n3": {}}, prefer={"web": "n2"})) == [
        ("claim", "web", None),
        ("tell", "web", "plan"),
    ]
    # the others never claim it, however long they have waited
    for me in ("n1", "n3"):
        others = {n: {} for n in ("n1", "n2", "n3") if n != me}
        d = decide(view(me=me, others=others, prefer={"web": "n2"}, waiting={"web": 1000.0}))
        assert d.actions == [] and d.why["web"] == "waiting for n2 to start it (omha move)"
    # nor does the target while the old holder's claim stands (it is stopping there)
    assert (
        acts(view(me="n2", others={"n1": {"web": ("stop", "STOPPING")}}, claims={"web": "n1"}, prefer={"web": "n2"}))
        == []
    )


def test_moved_group_stays_when_the_target_cannot_run_it() -> None:
    running = {"web": ("run", "DONE")}
    # target lost, unknown, in standby, unfit or failed there: the group stays where it runs
    assert acts(view(mine=running, claims={"web": "n1"}, prefer={"web": "n2"}, lost=("n2",))) == []
    assert acts(view(mine=running, claims={"web": "n1"}, prefer={"web": "n9"})) == []
    assert acts(view(mine=running, claims={"web": "n1"}, prefer={"web": "n2"}, standby=frozenset({"n2"}))) == []
    for kw in ({"unfit": {"web": "no disk"}}, {"failed": {"web": "test FAILED"}}, {"quorum": False}):
        nodes = {"n1": NodeView("n1", groups={"web": Instance("run", "DONE")}), "n2": NodeView("n2", **kw)}  # type: ignore[arg-type]
        v = View("n1", nodes, {"web": "run"}, CLTAB, {"web": "n1"}, prefer={"web": "n2"})
        assert acts(v) == [], kw
    # and when it is wanted and running nowhere, the usual ranking picks among the others
    nodes = {"n1": NodeView("n1"), "n2": NodeView("n2", failed={"web": "test FAILED"})}
    assert acts(View("n1", nodes, {"web": "run"}, CLTAB, prefer={"web": "n2"})) == [
        ("claim", "web", None),
        ("tell", "web", "plan"),
    ]


def test_moved_group_on_its_target_stays() -> None:
    assert acts(view(mine={"web": ("run", "DONE")}, claims={"web": "n1"}, prefer={"web": "n1"})) == []


def test_standby_node_stops_its_groups_and_releases_them() -> None:
    standby = frozenset({"n1"})
    d = decide(view(mine={"web": ("run", "DONE")}, claims={"web": "n1"}, standby=standby))
    assert [(a.kind, a.level) for a in d.actions] == [("tell", "stop")] and "standby" in d.actions[0].reason
    # mid-start too
    assert acts(view(mine={"web": ("plan", "STARTING")}, claims={"web": "n1"}, standby=standby)) == [
        ("tell", "web", "stop")
    ]
    assert acts(view(mine={"web": ("stop", "DONE")}, claims={"web": "n1"}, standby=standby)) == [
        ("release", "web", None)
    ]
    # a claim left from an earlier incarnation is released, not resumed
    assert acts(view(mine={}, claims={"web": "n1"}, standby=standby)) == [("release", "web", None)]


def test_standby_node_is_given_nothing() -> None:
    # n1 would be the first choice, but it is in standby: another node claims at once, n1 never does
    first = best_node("web", ["n1", "n2", "n3"])
    others = [n for n in ("n1", "n2", "n3") if n != first]
    standby = frozenset({first})
    d = decide(view(me=first, others={n: {} for n in others}, standby=standby, waiting={"web": 1000.0}))
    assert d.actions == []
    claimers = [
        n for n in others if acts(view(me=n, others={m: {} for m in ("n1", "n2", "n3") if m != n}, standby=standby))
    ]
    assert len(claimers) == 1
    # every node in standby: nobody runs it, and status says why
    nodes = {n: NodeView(n) for n in ("n1", "n2")}
    d = decide(View("n1", nodes, {"web": "run"}, CLTAB, standby=frozenset({"n1", "n2"})))
    assert d.actions == [] and d.why["web"] == "no fit node (n1 in standby; n2 in standby)"


def test_standby_wins_over_a_move_to_that_node() -> None:
    v = view(me="n2", others={"n1": {}}, prefer={"web": "n2"}, standby=frozenset({"n2"}))
    assert acts(v) == []
    v = view(me="n1", others={"n2": {}}, prefer={"web": "n2"}, standby=frozenset({"n2"}))
    assert acts(v) == [("claim", "web", None), ("tell", "web", "plan")]
