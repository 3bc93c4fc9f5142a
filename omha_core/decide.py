"""The HA policy as a pure function: a cluster view in, actions out.

:func:`decide` is what every node runs every cycle (OpenMosix::HA's ``scangroups``). It does no I/O and reads
no clock: the daemon builds a :class:`View` and carries out the :class:`Action` list. Per group, first match
wins, after the original:

1. running here but gone from hactl (or set to ``stop``) -> stop here;
2. running here and on another live node, or claimed by another node -> stop here (the claim holder keeps it);
3. here at ``test`` and PASSED, or DONE without test entries -> go to the hactl level;
4. here at ``test`` (or at the hactl level) and FAILED -> stop here, remember the failure;
5. here at ``plan`` and DONE -> go to ``test``;
6. wanted and running nowhere -> claim it and go to ``plan`` if this node is the best fit candidate (fewest
   groups, then a per-group hash, so starts spread over the nodes), or the next best after waiting;
7. in transition -> wait;
8. running here at a level other than hactl's -> go to it.

Operators' standing orders (:mod:`omha_core.operator`) weigh in: a node in ``standby`` stops what it runs and
is no candidate; a group with a preferred node (``omha move``) that can run it (alive, with quorum, not in
standby, fit, no recent failed test there) is stopped wherever else it runs, and only that node claims it once
its claim is free. The claim still decides: the preferred node starts the group only after the holder stopped it
and released its claim.

Safety rests on the claim: a node only plans a group whose claim it holds (create-if-absent in the store),
and a lost node's claims are only broken once it is fenced, so no group runs at its level on two nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from omha_core.cltab import Cltab
from omha_core.group_state import (  # noqa: F401 - the states, re-exported for the decision's callers
    CONFIGURED,
    DONE,
    FAILED,
    PASSED,
    STARTING,
    STOPPING,
    TRANSITIONS,
    GroupState,
)
from omha_core.hactl import STOP_LEVEL
from omha_core.ranking import Loads, rank

PLAN, TEST = "plan", "test"
#: a group as one node reports it (:mod:`omha_core.group_state`), under the name the decision's callers know
Instance = GroupState


@dataclass(frozen=True)
class NodeView:
    """What this node knows of one node.

    :param alive: heartbeating (always True for this node).
    :param fenced: lost, and fenced (or past the unfenced grace): its groups and claims may be taken over.
    :param groups: the groups it reported, active or not.
    :param unfit: groups it vetoed for itself (fitness hook), with reasons.
    :param failed: groups whose test failed there recently (not retried there until others were tried).
    :param quorum: it reported having quorum (a node without quorum starts nothing).
    """

    name: str
    alive: bool = True
    fenced: bool = False
    groups: Mapping[str, Instance] = field(default_factory=dict)
    unfit: Mapping[str, str] = field(default_factory=dict)
    failed: Mapping[str, str] = field(default_factory=dict)
    quorum: bool = True


@dataclass(frozen=True)
class View:
    """Everything :func:`decide` looks at.

    :param me: this node's name; ``nodes[me]`` holds this node's fresh local state.
    :param wanted: hactl: group -> level.
    :param claims: group -> node holding its claim.
    :param waiting: group -> seconds this node has seen it wanted and running nowhere (for the fallback).
    :param spread_delay: how long a node that is not the best candidate waits per rank before claiming.
    :param settling: True in the first moments after start-up, before this node has heard from the others:
        it starts nothing yet, so that starts spread instead of piling on the first node up.
    :param prefer: group -> the node an operator moved it to (``omha move``).
    :param standby: nodes an operator put in standby (``omha standby``): they run no group.
    """

    me: str
    nodes: Mapping[str, NodeView]
    wanted: Mapping[str, str]
    cltab: Cltab
    claims: Mapping[str, str] = field(default_factory=dict)
    quorum: bool = True
    waiting: Mapping[str, float] = field(default_factory=dict)
    spread_delay: float = 2.0
    settling: bool = False
    prefer: Mapping[str, str] = field(default_factory=dict)
    standby: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Action:
    """One thing the daemon must do.

    ``kind``: ``tell`` (move the local group to ``level``), ``claim`` (take the claim, then tell ``plan``),
    ``release`` (drop this node's claim), ``failed`` (remember that the group's test failed here).
    """

    kind: str
    group: str
    level: str | None = None
    reason: str = ""


@dataclass
class Decision:
    """The actions for this cycle and, per group not running anywhere, the reason why."""

    actions: list[Action] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Index:
    """What every group's decision looks up, computed once per :func:`decide` rather than once per group."""

    #: per group: the other nodes where it is active and alive, or lost but not yet fenced
    holders: dict[str, list[str]]
    #: live nodes with quorum, in view order: the candidates for any group before fitness and failures
    eligible: list[str]
    #: those of them that vetoed or failed some group
    picky: list[str]
    #: groups with ``test`` entries at the ``test`` level (``Cltab.has_tests`` scans every entry per call)
    tested: frozenset[str]


def _index(view: View) -> _Index:
    eligible = [name for name, node in view.nodes.items() if node.alive and node.quorum]
    picky = [name for name in eligible if view.nodes[name].unfit or view.nodes[name].failed]
    tested = frozenset(e.group for e in view.cltab.entries if e.mode == "test" and e.matches(TEST))
    return _Index(_holders(view), eligible, picky, tested)


def _holders(view: View) -> dict[str, list[str]]:
    """Per group: the nodes (other than me) where it is active and alive, or lost but not yet fenced."""
    out: dict[str, list[str]] = {}
    for name, node in view.nodes.items():
        if name == view.me or not (node.alive or not node.fenced):
            continue
        for group, inst in node.groups.items():
            if inst.active:
                out.setdefault(group, []).append(name)
    return out


def preferred_target(view: View, group: str) -> str | None:
    """The node ``group`` was moved to, when that node can run it now; else None (the usual ranking decides)."""
    target = view.prefer.get(group)
    node = view.nodes.get(target) if target is not None else None
    if node is None or not node.alive or not node.quorum or target in view.standby:
        return None
    if group in node.unfit or group in node.failed:
        return None
    return target


def decide(view: View) -> Decision:
    """Decide this cycle's actions for every group known to hactl, the cltab or this node."""
    me = view.nodes[view.me]
    result = Decision()
    defined = set(view.cltab.groups)
    groups = list(dict.fromkeys([*view.wanted, *me.groups, *(g for g, n in view.claims.items() if n == view.me)]))
    counts = {name: 0 for name, node in view.nodes.items() if node.alive}
    for holder in view.claims.values():
        if holder in counts:
            counts[holder] += 1
    index = _index(view)
    load = Loads(counts, index.eligible)

    for group in groups:
        want = view.wanted.get(group)
        if want is not None and group not in defined:
            result.why[group] = "not defined in cltab"
            want = None
        if want == STOP_LEVEL:
            want = None
        inst = me.groups.get(group, Instance(None, CONFIGURED))
        claimant = view.claims.get(group)
        act = _decide_group(view, group, want, inst, claimant, load, result, index)
        if act:
            result.actions.extend(act)
    return result


def _decide_group(
    view: View,
    group: str,
    want: str | None,
    inst: Instance,
    claimant: str | None,
    load: Loads,
    result: Decision,
    index: _Index,
) -> list[Action]:
    """One group's actions."""
    here = inst.active
    holders = index.holders.get(group, [])

    def stop(reason: str) -> Action:
        return Action("tell", group, STOP_LEVEL, reason)

    # Without quorum, or without being a member, a node stops everything and starts nothing.
    if not view.quorum:
        result.why.setdefault(group, "no quorum")
        if here and inst.level != STOP_LEVEL:
            return [Action("tell", group, STOP_LEVEL, "quorum lost")]
        return [Action("release", group, reason="quorum lost")] if not here and claimant == view.me else []

    if not here:
        if claimant == view.me and inst.state not in TRANSITIONS:
            if want is None or (inst.level == STOP_LEVEL and inst.state == DONE):
                return [Action("release", group, reason="not running here")]
            if view.me in view.standby:
                return [Action("release", group, reason="this node is in standby")]
            target = preferred_target(view, group)
            if target not in (None, view.me):
                return [Action("release", group, reason=f"moved to {target}")]
            if inst.level is None:
                # a claim left from an earlier incarnation of this daemon: start from plan again, but only once
                # settled, so that a second daemon running under this node name is caught first (uniqueness.py)
                if view.settling:
                    result.why[group] = "starting up: resuming this node's claim once settled"
                    return []
                return [Action("tell", group, PLAN, "claim held, resuming")]
        if want is None:
            return []
        return _maybe_start(view, group, want, claimant, load, result, index)

    if inst.state == FAILED and inst.level in (None, STOP_LEVEL):
        # a stop that failed may have left resources held (a mount, an address): keep the claim, start nothing
        result.why[group] = (
            "stop FAILED here: keeping the claim; fix it, then omha cleanup GROUP NODE (or restart this node's daemon),"
            " or fence it"
        )
        return []
    # (1) running here but no longer wanted
    if want is None:
        if inst.level == STOP_LEVEL:
            return []
        return [Action("tell", group, STOP_LEVEL, "removed from hactl or set to stop")]
    # (2) conflict: someone else holds the claim, or it runs on another live node too
    if claimant not in (None, view.me):
        return [Action("tell", group, STOP_LEVEL, f"claimed by {claimant}")]
    others = [n for n in holders if view.nodes[n].alive]
    if others and claimant != view.me and min([*others, view.me]) != view.me:
        return [Action("tell", group, STOP_LEVEL, f"also running on {', '.join(sorted(others))}")]
    if inst.level != STOP_LEVEL:  # (an active group at level stop is stopping already)
        if view.me in view.standby:
            return [stop("this node is in standby")]
        target = preferred_target(view, group)
        if target not in (None, view.me):
            return [stop(f"moving to {target} (omha move)")]
    acts: list[Action] = []
    if claimant is None:
        acts.append(Action("claim", group, None, "running without a claim"))
    if inst.state in TRANSITIONS:  # (7)
        return acts
    has_tests = group in index.tested
    if inst.level == TEST:
        if inst.state == PASSED or (inst.state == DONE and not has_tests):  # (3)
            return [*acts, Action("tell", group, want, "test passed")]
        if inst.state == FAILED:  # (4)
            return [*acts, Action("failed", group, reason="test FAILED"), stop("test FAILED here")]
        return acts
    if inst.level == PLAN:
        if inst.state in (DONE, PASSED):  # (5)
            return [*acts, Action("tell", group, TEST, "planned")]
        if inst.state == FAILED:
            return [*acts, Action("failed", group, reason="plan FAILED"), stop("plan FAILED here")]
        return acts
    if inst.state == FAILED:  # a wait entry failed at the run level: this node is unfit, let another try
        reason = f"FAILED at level {inst.level}"
        return [*acts, Action("failed", group, reason=reason), stop(reason + " here")]
    if inst.level != want:  # (8)
        return [*acts, Action("tell", group, want, "hactl level changed")]
    return acts


def _maybe_start(
    view: View,
    group: str,
    want: str,
    claimant: str | None,
    load: Loads,
    result: Decision,
    index: _Index,
) -> list[Action]:
    """(6): the group is wanted and not active here; claim it if this node should run it."""
    holders = index.holders.get(group, [])
    if claimant is not None:
        holder = view.nodes.get(claimant)
        if holder is None or not holder.alive:
            if holder is not None and holder.fenced:
                result.why[group] = f"taking over from fenced {claimant}"
            else:
                result.why[group] = f"fencing {claimant} pending (it held the group when it was lost)"
        elif claimant != view.me:
            inst = holder.groups.get(group)
            if inst is None or not inst.active:
                result.why[group] = f"claimed by {claimant}, starting there"
        return []
    if holders:
        lost = [n for n in holders if not view.nodes[n].alive]
        if lost:
            result.why[group] = f"fencing {', '.join(lost)} pending (it held the group when it was lost)"
        return []
    if view.settling:
        result.why[group] = "starting up: waiting to hear from the other nodes"
        return []
    candidates = index.eligible
    excluded = []
    out = {name for name in view.standby if name in candidates}
    excluded += [f"{name} in standby" for name in out]
    for name in index.picky:
        node = view.nodes[name]
        if name in out:
            continue
        if group in node.unfit:
            excluded.append(f"{name} unfit: {node.unfit[group]}")
            out.add(name)
        elif group in node.failed:
            excluded.append(f"test FAILED on {name}")
            out.add(name)
    if out:
        candidates = [n for n in candidates if n not in out]
    if not candidates:
        result.why[group] = "no fit node" + (f" ({'; '.join(sorted(excluded))})" if excluded else "")
        return []
    target = view.prefer.get(group)
    if target in candidates:  # moved there by an operator: only that node claims it
        load.add(target)
        if view.me == target:
            return [Action("claim", group, None, "moved here (omha move)"), Action("tell", group, PLAN, "claimed")]
        result.why[group] = f"waiting for {target} to start it (omha move)"
        return []
    if out:
        best, place = rank(group, candidates, load.counts, view.me)
    else:  # no node left out: ranked from the load buckets
        best, place = load.rank_eligible(group, view.me)
    load.add(best)  # later groups in this cycle see the assignment
    if place is None:
        return []
    if place == 0 or view.waiting.get(group, 0.0) >= place * view.spread_delay:
        return [Action("claim", group, None, "wanted and running nowhere"), Action("tell", group, PLAN, "claimed")]
    result.why[group] = f"waiting for {best} to start it"
    return []
