"""The fence state machine: pure decisions about one lost node, over frozen inputs.

Given what this node knows about one lost node (its own fence attempt, the store's fence record, whether a
device covers the node, quorum, the time now), :func:`advance` returns what status shows for the node,
whether its groups may be taken over ("safe"), and what the shell must do next (take the fence lock, start
an attempt, log a warning once). :func:`finish` does the same for the end of an attempt, from the device
levels' outcome. Nothing here does I/O, reads a clock or starts a task: the
:class:`~omha_core.fencing.fencer.Fencer` does that, so the rules of fence-before-takeover can be read (and
tested) in one place:

- a successful record for the node's last incarnation makes it safe, whoever wrote it, with or without
  quorum (fenced is fenced);
- only a quorate partition fences, or takes over without fencing;
- a node no device covers is taken over after ``unfenced_grace`` seconds;
- a failed record is taken over anyway only with ``on_fence_failure = "takeover"``;
- one device call at a time: while this node's attempt (or an attempt of an earlier loss of the node) still
  runs, nothing else starts; a failure is retried after a growing delay;
- the fence lock decides who fences: the machine asks for it (:attr:`Act.TAKE_LOCK`) and is advanced again
  with the lock's holder.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

#: the keys of a fence record that status shows for a fenced node
PUBLIC_KEYS = ("by", "device", "kind", "action", "verified", "time", "message")


class Act(enum.Enum):
    """What the shell does after a step of the machine."""

    #: log, once, that the node is taken over unfenced (no device covers it)
    WARN_UNFENCED = "warn-unfenced"
    #: log, once, that the node is taken over although fencing failed (``on_fence_failure = "takeover"``)
    WARN_TAKEOVER = "warn-takeover"
    #: take (or find) the fence lock for the node's incarnation, then advance again with its holder
    TAKE_LOCK = "take-lock"
    #: start a fence attempt through the device levels (the step's attempt counts it)
    START = "start"


@dataclass(frozen=True)
class Attempt:
    """This node's own fencing of one lost incarnation of a node.

    :param lost_at: when this node first saw it lost (clock seconds).
    :param attempts: attempts started so far.
    :param next_try: no new attempt before this time (after a failure).
    :param busy: an attempt is running now.
    :param running: a device call of the running attempt overran its maximum (the note says which).
    :param errors: the failed devices of the last failed attempt.
    :param record: this node's own successful fence record, until the store shows it.
    """

    incarnation: str
    lost_at: float
    attempts: int = 0
    next_try: float = 0.0
    busy: bool = False
    running: str | None = None
    errors: tuple[str, ...] = ()
    record: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Policy:
    """The cluster's fencing settings that the machine needs, and this node's name."""

    me: str
    on_failure: str = "wait"
    grace: float = 0.0


@dataclass(frozen=True)
class View:
    """What this node knows about one lost node at one step.

    :param record: the store's fence record for the node (empty when none).
    :param covered: some fence device covers the node.
    :param quorum: this partition has quorum.
    :param shown: what status showed for the node at the previous step (to warn only once).
    :param earlier: an attempt of an earlier loss of the node, still finishing (a device call cannot be
        interrupted, so the node is not fenced again until it has ended).
    :param lock_holder: who holds the fence lock, once taken (None: not taken yet at this step).
    """

    node: str
    now: float
    attempt: Attempt
    record: Mapping[str, Any]
    covered: bool
    quorum: bool
    shown: Mapping[str, Any]
    earlier: Attempt | None = None
    lock_holder: str | None = None


@dataclass(frozen=True)
class Step:
    """The machine's answer: the status to show, whether the node's groups may be taken over, what to do,
    and the attempt as it now is."""

    status: dict[str, Any] | None
    attempt: Attempt
    safe: bool = False
    actions: tuple[Act, ...] = ()


def public(record: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a fence record that status shows."""
    return {k: record.get(k) for k in PUBLIC_KEYS if k in record}


def in_progress(attempt: Attempt, me: str) -> dict[str, Any]:
    """Status of this node's own attempt under way; after a failure the state stays "fence-failed" while
    retrying, so that the reason stays visible; a device call past its maximum is "fence-failed" and still
    running."""
    if attempt.running:
        return {
            "state": "fence-failed",
            "by": me,
            "errors": [*attempt.errors, attempt.running],
            "still_running": True,
            "attempt": attempt.attempts,
        }
    if attempt.errors:
        errors = list(attempt.errors)
        return {"state": "fence-failed", "by": me, "errors": errors, "retrying": True, "attempt": attempt.attempts}
    return {"state": "fencing", "by": me, "attempt": attempt.attempts}


def _record_for(view: View) -> Mapping[str, Any]:
    """The record that counts: the store's, unless this node fenced the node after the store was read."""
    rec = view.record
    inc = view.attempt.incarnation
    own = view.attempt.record
    if own is not None and not (rec.get("incarnation") == inc and rec.get("ok")):
        return own  # we fenced it after this cycle read the records: never fence it again
    return rec


def advance(view: View, policy: Policy) -> Step:
    """One step of fencing one lost node that held groups (see the module's rules)."""
    p, now = view.attempt, view.now
    rec = _record_for(view)
    this_loss = rec.get("incarnation") == p.incarnation
    if this_loss and rec.get("ok"):
        return Step({"state": "fenced", **public(rec)}, p, safe=True)
    if not view.covered:
        if not view.quorum:  # taking over unfenced is a takeover too: only a quorate partition does it
            return Step({"state": "waiting", "reason": "no quorum: this partition takes over nothing"}, p)
        if now - p.lost_at >= policy.grace:
            warn = (Act.WARN_UNFENCED,) if view.shown.get("state") != "unfenced" else ()
            warning = "no fence device configured; taken over unfenced"
            return Step({"state": "unfenced", "warning": warning}, p, safe=True, actions=warn)
        return Step({"state": "grace", "remaining": round(policy.grace - (now - p.lost_at), 1)}, p)
    if this_loss and rec.get("result") == "failed" and policy.on_failure == "takeover":
        warn = (Act.WARN_TAKEOVER,) if view.shown.get("takeover") is None else ()
        status = {
            "state": "fence-failed",
            **public(rec),
            "takeover": True,
            "warning": f"fencing failed ({rec.get('message') or 'every device failed'}); its groups were "
            "taken over anyway (on_fence_failure = takeover)",
        }
        return Step(status, p, safe=True, actions=warn)
    if not view.quorum:
        return Step({"state": "waiting", "reason": "no quorum: this partition fences nobody"}, p)
    if p.busy:
        return Step(in_progress(p, policy.me), p)
    if view.earlier is not None and view.earlier.busy:
        reason = view.earlier.running or "a fence call of an earlier loss is still running"
        return Step({"state": "fencing", "by": policy.me, "reason": f"waiting: {reason}"}, p)
    if now < p.next_try:
        return Step({"state": "fence-failed", "errors": list(p.errors), "retry_in": round(p.next_try - now, 1)}, p)
    holder = view.lock_holder
    if holder is None:
        return Step(None, p, actions=(Act.TAKE_LOCK,))
    if holder != policy.me:
        if this_loss and rec.get("result") == "failed":
            errors = list(rec.get("errors") or [])
            return Step({"state": "fence-failed", "by": holder, "errors": errors, "retrying": True}, p)
        return Step({"state": "fencing", "by": holder}, p)
    started = replace(p, attempts=p.attempts + 1)
    return Step(in_progress(started, policy.me), started, actions=(Act.START,))


def retry_delay(attempts: int, retry_max: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: 2, 4, 8, ... capped at ``retry_max``."""
    return min(retry_max, 2.0 ** min(attempts, 10))


@dataclass(frozen=True)
class Finish:
    """What to do when an attempt has ended.

    :param publish: write the attempt's fence record.
    :param fenced: the node is fenced: never fence it again for this loss.
    :param notify: tell the plugins (and the daemon's loop) that the node is fenced.
    :param retry_in: the attempt failed: seconds before the next one (None when it did not fail).
    """

    publish: bool
    fenced: bool
    notify: bool = False
    retry_in: float | None = None


def finish(succeeded: bool, published_at_off: bool, attempts: int, retry_max: float) -> Finish:
    """The end of an attempt, from the device levels' outcome.

    :param succeeded: a device fenced the node.
    :param published_at_off: a power cycle already published the node fenced when it switched it off (and
        the plugins were told then).
    :param attempts: attempts started so far, this one included.
    """
    if succeeded:
        return Finish(publish=True, fenced=True, notify=not published_at_off)
    if published_at_off:
        # switched off and published fenced, then the power-on (or the rest of the cycle) failed: the node
        # stays fenced; a failure now must not replace the record the takeover already relied on
        return Finish(publish=False, fenced=True)
    return Finish(publish=True, fenced=False, retry_in=retry_delay(attempts, retry_max))
