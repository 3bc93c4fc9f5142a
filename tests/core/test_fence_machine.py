"""The pure fence state machine (omha_core.fencing.machine) and the levels' device selection, without I/O:
every rule of fence-before-takeover on frozen inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.fencing import Device, fence_levels, plan
from omha_core.fencing.machine import Act, Attempt, Policy, View, advance, finish, retry_delay

ME = Policy(me="n1", on_failure="wait", grace=30.0)
INC = "inc-7"


def view(**kw: Any) -> View:
    """n3, lost at t=100 in incarnation INC, covered by a device, with quorum and no record yet."""
    base = View(
        node="n3",
        now=100.0,
        attempt=Attempt(INC, lost_at=100.0),
        record={},
        covered=True,
        quorum=True,
        shown={},
    )
    return replace(base, **kw)


def ok_record(inc: str = INC) -> dict[str, Any]:
    return {"node": "n3", "incarnation": inc, "ok": True, "result": "ok", "by": "n2", "device": "pdu", "time": 1.0}


def failed_record() -> dict[str, Any]:
    return {"node": "n3", "incarnation": INC, "ok": False, "result": "failed", "by": "n2", "errors": ["pdu: boom"]}


def drive(v: View, holder: str = "n1") -> Any:
    """Advance as the Fencer does: when the machine asks for the lock, advance again with its holder."""
    step = advance(v, ME)
    if Act.TAKE_LOCK in step.actions:
        assert step.status is None and not step.safe
        step = advance(replace(v, lock_holder=holder), ME)
    return step


# -- the success path ---------------------------------------------------------------------------------------


def test_success_path_lock_start_then_fenced_by_the_record() -> None:
    first = advance(view(), ME)
    assert first.actions == (Act.TAKE_LOCK,) and not first.safe  # nothing decided before the lock
    started = advance(view(lock_holder="n1"), ME)
    assert started.actions == (Act.START,) and not started.safe
    assert started.attempt.attempts == 1
    assert started.status == {"state": "fencing", "by": "n1", "attempt": 1}
    # while the attempt runs: no second start, not safe
    running = advance(view(attempt=replace(started.attempt, busy=True)), ME)
    assert (
        running.actions == () and not running.safe and running.status == {"state": "fencing", "by": "n1", "attempt": 1}
    )
    # the attempt ended well: its own record (before the store shows it) makes the node safe
    own = ok_record() | {"by": "n1"}
    done = advance(view(attempt=replace(started.attempt, record=own)), ME)
    assert done.safe and done.actions == ()
    assert done.status == {"state": "fenced", "by": "n1", "device": "pdu", "time": 1.0}


def test_a_successful_record_of_this_loss_is_safe_even_without_quorum() -> None:
    step = advance(view(record=ok_record(), quorum=False), ME)
    assert step.safe and step.status is not None and step.status["state"] == "fenced"


def test_a_record_of_an_earlier_incarnation_does_not_make_the_node_safe() -> None:
    step = drive(view(record=ok_record("inc-6")))
    assert not step.safe and step.actions == (Act.START,)


def test_finish_success_publishes_and_notifies_once() -> None:
    assert finish(True, False, 1, 30.0) == finish(True, False, 5, 30.0)
    end = finish(True, published_at_off=False, attempts=1, retry_max=30.0)
    assert end.publish and end.fenced and end.notify and end.retry_in is None
    at_off = finish(True, published_at_off=True, attempts=1, retry_max=30.0)
    assert at_off.publish and at_off.fenced and not at_off.notify  # told when it was switched off


# -- failures -------------------------------------------------------------------------------------------------


def test_failure_waits_for_the_retry_delay_then_takes_the_lock_again() -> None:
    end = finish(False, published_at_off=False, attempts=3, retry_max=30.0)
    assert end.publish and not end.fenced and end.retry_in == 8.0
    failed = Attempt(INC, lost_at=100.0, attempts=3, next_try=108.0, errors=("pdu (command): boom",))
    waiting = advance(view(now=104.0, attempt=failed), ME)
    assert not waiting.safe and waiting.actions == ()
    assert waiting.status == {"state": "fence-failed", "errors": ["pdu (command): boom"], "retry_in": 4.0}
    again = drive(view(now=108.0, attempt=failed))
    assert again.actions == (Act.START,) and again.attempt.attempts == 4 and not again.safe
    assert again.status == {
        "state": "fence-failed",
        "by": "n1",
        "errors": ["pdu (command): boom"],
        "retrying": True,
        "attempt": 4,
    }


def test_retry_delay_grows_and_is_capped() -> None:
    assert [retry_delay(n, 30.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_failure_after_the_power_off_was_published_keeps_the_node_fenced() -> None:
    end = finish(False, published_at_off=True, attempts=1, retry_max=30.0)
    assert not end.publish and end.fenced and end.retry_in is None


def test_failed_record_waits_unless_takeover_is_configured() -> None:
    wait = drive(view(record=failed_record()), holder="n2")
    assert not wait.safe
    assert wait.status == {"state": "fence-failed", "by": "n2", "errors": ["pdu: boom"], "retrying": True}
    takeover = Policy(me="n1", on_failure="takeover", grace=30.0)
    step = advance(view(record=failed_record()), takeover)
    assert step.safe and step.actions == (Act.WARN_TAKEOVER,)
    assert step.status is not None and step.status["takeover"] is True and "pdu" not in step.status["warning"]
    again = advance(view(record=failed_record(), shown=step.status), takeover)
    assert again.safe and again.actions == ()  # warned once


# -- a device call that hangs past its maximum -----------------------------------------------------------------


def test_a_hung_call_is_failed_and_still_running_and_nothing_else_starts() -> None:
    note = "pdu: off of n3 still running after 20 s, the most it should take"
    hung = Attempt(INC, lost_at=100.0, attempts=1, busy=True, running=note)
    for now in (130.0, 1000.0):
        step = advance(view(now=now, attempt=hung), ME)
        assert not step.safe and step.actions == ()
        assert step.status == {
            "state": "fence-failed",
            "by": "n1",
            "errors": [note],
            "still_running": True,
            "attempt": 1,
        }


def test_a_call_of_an_earlier_loss_still_running_blocks_a_new_attempt() -> None:
    earlier = Attempt("inc-6", lost_at=50.0, attempts=1, busy=True, running="pdu: still running")
    step = advance(view(earlier=earlier), ME)
    assert not step.safe and step.actions == ()
    assert step.status == {"state": "fencing", "by": "n1", "reason": "waiting: pdu: still running"}
    done = drive(view(earlier=replace(earlier, busy=False)))
    assert done.actions == (Act.START,)


# -- no takeover before success --------------------------------------------------------------------------------


def test_no_takeover_is_signalled_before_a_successful_fence() -> None:
    """Through every state short of a successful record, a covered node is never safe."""
    attempts = [
        Attempt(INC, lost_at=100.0),
        Attempt(INC, lost_at=100.0, attempts=1, busy=True),
        Attempt(INC, lost_at=100.0, attempts=2, next_try=500.0, errors=("x",)),
        Attempt(INC, lost_at=100.0, attempts=1, busy=True, running="hung"),
    ]
    for attempt in attempts:
        for record in ({}, failed_record(), ok_record("inc-6")):
            for quorum in (True, False):
                for now in (100.0, 10_000.0):
                    for holder in ("n1", "n2"):
                        v = view(attempt=attempt, record=record, quorum=quorum, now=now)
                        assert not drive(v, holder).safe, (attempt, record, quorum, now, holder)


def test_another_holder_of_the_lock_fences_and_this_node_waits() -> None:
    step = drive(view(), holder="n2")
    assert not step.safe and step.actions == () and step.status == {"state": "fencing", "by": "n2"}


def test_no_quorum_fences_nobody() -> None:
    step = advance(view(quorum=False), ME)
    assert not step.safe and step.actions == ()
    assert step.status == {"state": "waiting", "reason": "no quorum: this partition fences nobody"}


# -- a node no device covers -----------------------------------------------------------------------------------


def test_uncovered_node_is_taken_over_after_the_grace_with_one_warning() -> None:
    grace = advance(view(covered=False, now=110.0), ME)
    assert not grace.safe and grace.status == {"state": "grace", "remaining": 20.0}
    after = advance(view(covered=False, now=130.0), ME)
    assert after.safe and after.actions == (Act.WARN_UNFENCED,)
    assert after.status is not None and after.status["state"] == "unfenced"
    later = advance(view(covered=False, now=140.0, shown=after.status), ME)
    assert later.safe and later.actions == ()
    no_quorum = advance(view(covered=False, now=1000.0, quorum=False), ME)
    assert not no_quorum.safe  # taking over unfenced is a takeover: only with quorum


# -- levels: device selection and failure -> next level ----------------------------------------------------------


class Scripted(FenceDevice):
    """A device whose every call returns the result it was built with, and that records the calls."""

    calls: list[str] = []

    def __init__(self, name: str, ok: bool) -> None:
        super().__init__(name, {})
        self.ok = ok

    def fence(self, action: str, targets: list[str], node: str) -> FenceResult:
        Scripted.calls.append(f"{self.name} {action} {node}")
        return FenceResult(ok=self.ok, message="" if self.ok else f"{self.name} failed: secret-pw")

    def off(self, targets: list[str]) -> FenceResult:
        return self.fence("off", targets, "")

    def on(self, targets: list[str]) -> FenceResult:
        return self.fence("on", targets, "")


def device(name: str, ok: bool, nodes: dict[str, list[str]], action: str | None = None) -> Device:
    return Device(name=name, kind="scripted", plugin="test", device=Scripted(name, ok), nodes=nodes, action=action)


def test_plan_keeps_the_configured_order_of_the_devices_covering_the_node() -> None:
    a = device("a", True, {"n3": ["1"]}, action="off")
    b = device("b", True, {"n4": ["1"]})
    c = device("c", True, {"n3": ["2"]})
    assert [(d.name, act) for d, act in plan([a, b, c], "n3", "reboot")] == [("a", "off"), ("c", "reboot")]
    assert [act for _, act in plan([a, c], "n3", "reboot", explicit=True)] == ["reboot", "reboot"]


def test_a_failing_device_passes_to_the_next_level() -> None:
    Scripted.calls = []
    devices = [device("a", False, {"n3": ["1"]}), device("x", True, {"n4": ["1"]}), device("b", True, {"n3": ["2"]})]
    outcome = fence_levels(devices, "n3", "off", ["secret-pw"])
    assert Scripted.calls == ["a off n3", "b off n3"]
    assert outcome.device is devices[2] and outcome.action == "off" and outcome.result is not None
    assert outcome.errors == ["a (scripted): a failed: ***"]
    Scripted.calls = []
    none = fence_levels(devices[:1], "n3", "off", [])
    assert none.result is None and none.device is None and len(none.errors) == 1
