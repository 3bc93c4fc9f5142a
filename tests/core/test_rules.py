"""The node loop's pure decisions outside decide() (omha_core.rules): who is lost holding groups, who breaks a
fenced node's claims, when a failed test is forgotten, settling, the waiting timer and group-moved tracking."""

from __future__ import annotations

from omha_core.cltab import Cltab
from omha_core.decide import DONE, FAILED, PASSED, STARTING, STOPPING, Instance, NodeView, View
from omha_core.rules import (
    Failed,
    Lost,
    claim_breaker,
    expire_failed,
    lost_holding_groups,
    settling,
    track_moves,
    waiting_since,
)
from omha_core.status import NodeStatus


def status(node: str, **groups: Instance) -> NodeStatus:
    return NodeStatus(node, f"{node}.1", 1, groups=groups)


def view(
    nodes: dict[str, dict[str, Instance]],
    wanted: dict[str, str],
    claims: dict[str, str] | None = None,
    dead: tuple[str, ...] = (),
    settling: bool = False,
    me: str = "n1",
) -> View:
    return View(
        me=me,
        nodes={n: NodeView(n, alive=n not in dead, groups=g) for n, g in nodes.items()},
        wanted=wanted,
        cltab=Cltab(filename="cltab"),
        claims=claims or {},
        settling=settling,
    )


# -- lost nodes holding groups ---------------------------------------------------------------------------------


def test_a_silent_node_running_a_group_is_lost_holding_it() -> None:
    statuses = {"n1": status("n1"), "n2": status("n2", g1=Instance("run", DONE), g2=Instance("stop", DONE))}
    assert lost_holding_groups(statuses, {"n1"}, {}) == {"n2": Lost("n2.1", ("g1",))}


def test_a_live_node_is_never_lost_whatever_it_holds() -> None:
    statuses = {"n2": status("n2", g1=Instance("run", DONE))}
    assert lost_holding_groups(statuses, {"n1", "n2"}, {"g1": "n2"}) == {}


def test_a_silent_node_holding_nothing_needs_no_fence() -> None:
    statuses = {"n2": status("n2", g1=Instance("stop", DONE), g2=Instance(None, "CONFIGURED"))}
    assert lost_holding_groups(statuses, {"n1"}, {"g1": "n3"}) == {}


def test_a_claim_alone_counts_and_groups_are_merged_and_sorted() -> None:
    """A claim held by the lost node counts though its status shows nothing running (it may have started since),
    and a stop that failed or is under way still holds resources."""
    statuses = {"n2": status("n2", g3=Instance("stop", FAILED), g2=Instance("stop", STOPPING))}
    lost = lost_holding_groups(statuses, {"n1"}, {"g9": "n2", "g3": "n2", "g1": "n1"})
    assert lost == {"n2": Lost("n2.1", ("g2", "g3", "g9"))}


# -- the claim breaker -----------------------------------------------------------------------------------------


def test_the_fencer_breaks_the_claims_while_it_is_alive() -> None:
    assert claim_breaker("n3", {"n3": {"by": "n2"}}, {"n1", "n2"}) == "n2"


def test_the_lowest_live_node_breaks_them_when_the_fencer_is_gone_or_there_was_none() -> None:
    assert claim_breaker("n3", {"n3": {"by": "n4"}}, {"n2", "n1"}) == "n1"
    assert claim_breaker("n3", {}, {"n5", "n2"}) == "n2"  # the unfenced grace: no record
    assert claim_breaker("n3", {"n3": {"by": 7}}, {"n5", "n2"}) == "n2"  # garbage in a record


# -- failed tests ---------------------------------------------------------------------------------------------


def test_a_failed_test_is_forgotten_only_after_the_retry_delay() -> None:
    failed = {"g1": Failed(100.0, "test failed"), "g2": Failed(125.0, "test failed"), "g3": Failed(90.0, "x")}
    kept, expired = expire_failed(failed, 130.0, 30.0)
    assert kept == {"g1": failed["g1"], "g2": failed["g2"]}  # exactly 30 s: not yet
    assert expired == {"g3": failed["g3"]}
    assert list(kept) == ["g1", "g2"]
    assert failed == {"g1": Failed(100.0, "test failed"), "g2": Failed(125.0, "test failed"), "g3": Failed(90.0, "x")}


def test_nothing_expires_within_the_delay() -> None:
    kept, expired = expire_failed({"g1": Failed(10.0, "r")}, 10.0, 0.0)
    assert (kept, expired) == ({"g1": Failed(10.0, "r")}, {})


# -- settling ---------------------------------------------------------------------------------------------------


def test_settling_lasts_settle_seconds_from_the_start() -> None:
    assert settling(101.9, 100.0, 2.0)
    assert not settling(102.0, 100.0, 2.0)
    assert not settling(100.0, 100.0, 0.0)


# -- the waiting timer ------------------------------------------------------------------------------------------


def test_a_wanted_group_running_nowhere_waits_from_when_it_was_first_seen_so() -> None:
    v = view({"n1": {}, "n2": {}}, {"g1": "run", "g2": "run"})
    assert waiting_since({}, v, 10.0) == {"g1": 10.0, "g2": 10.0}
    assert waiting_since({"g1": 4.0}, v, 10.0) == {"g1": 4.0, "g2": 10.0}  # the clock keeps its start


def test_a_group_running_on_a_live_node_or_claimed_waits_no_more() -> None:
    v = view({"n1": {}, "n2": {"g1": Instance("plan", STARTING)}}, {"g1": "run", "g2": "run"}, claims={"g2": "n3"})
    assert waiting_since({"g1": 4.0, "g2": 5.0}, v, 10.0) == {}


def test_a_group_running_only_on_a_dead_node_still_waits() -> None:
    v = view({"n1": {}, "n2": {"g1": Instance("run", DONE)}}, {"g1": "run"}, dead=("n2",))
    assert waiting_since({"g1": 4.0}, v, 10.0) == {"g1": 4.0}


def test_a_group_no_longer_wanted_is_dropped_and_nothing_waits_while_settling() -> None:
    v = view({"n1": {}}, {"g1": "run"})
    assert waiting_since({"g1": 4.0, "gone": 1.0}, v, 10.0) == {"g1": 4.0}
    assert waiting_since({"g1": 4.0}, view({"n1": {}}, {"g1": "run"}, settling=True), 10.0) == {}


# -- group moves ------------------------------------------------------------------------------------------------


def test_a_group_arriving_here_names_the_node_it_was_last_seen_on() -> None:
    before = view({"n1": {}, "n2": {"g1": Instance("run", DONE)}}, {"g1": "run"})
    first = track_moves(before, frozenset(), {})
    assert first.arrived == () and first.seen_holder == {"g1": "n2"} and first.at_level == frozenset()
    after = view({"n1": {"g1": Instance("run", DONE)}, "n2": {}}, {"g1": "run"}, dead=("n2",))
    moved = track_moves(after, first.at_level, first.seen_holder)
    assert moved.arrived == (("g1", "n2", "run"),)
    assert moved.at_level == {"g1"} and moved.seen_holder == {"g1": "n1"}
    again = track_moves(after, moved.at_level, moved.seen_holder)
    assert again.arrived == ()  # told once, not every cycle


def test_a_passed_test_level_counts_as_arrived_and_leaving_the_level_resets() -> None:
    v = view({"n1": {"g1": Instance("test", PASSED)}}, {"g1": "test"})
    moves = track_moves(v, frozenset(), {})
    assert moves.arrived == (("g1", None, "test"),)  # first start anywhere: moved from nobody
    gone = track_moves(view({"n1": {"g1": Instance("test", STARTING)}}, {"g1": "test"}), moves.at_level, {})
    assert gone.at_level == frozenset()
    assert track_moves(v, gone.at_level, {}).arrived == (("g1", None, "test"),)
