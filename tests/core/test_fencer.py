"""Who fences: the fence lock per lost incarnation, and its hand-over when the fencer itself is lost."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from omha_core import hookimpl
from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.config import validate_config
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.fencing import Fencer
from omha_core.plugins import get_plugin_manager


def fencer(tmp_path: Path, me: str, store: SharedDirStore | None = None) -> Fencer:
    cfg = validate_config({"node": me, "sharedfs": {"path": str(tmp_path)}})
    if store is None:
        store = SharedDirStore(cfg)
        store.open()
    return Fencer(cfg, get_plugin_manager(), store, me)


def test_one_fencer_and_hand_over_when_it_is_lost(tmp_path: Path) -> None:
    n1, n2 = fencer(tmp_path, "n1"), fencer(tmp_path, "n2")
    assert n1._lock("n3", "inc1", {"n1", "n2"}) == "n1"
    assert n2._lock("n3", "inc1", {"n1", "n2"}) == "n1"  # n1 is alive: n2 waits for its record
    assert n2._lock("n3", "inc1", {"n2"}) == "n2"  # n1 was lost too: n2 takes over


def test_store_that_cannot_name_the_holder_never_hands_over(tmp_path: Path) -> None:
    class Mute(SharedDirStore):
        def fence_lock_holder(self, node: str, key: str) -> str | None:
            return None

    store = Mute(validate_config({"sharedfs": {"path": str(tmp_path)}}))
    store.open()
    n1, n2 = fencer(tmp_path, "n1", store), fencer(tmp_path, "n2", store)
    assert n1._lock("n3", "inc1", {"n1", "n2"}) == "n1"
    assert n2._lock("n3", "inc1", {"n2"}) == "?"  # unknown holder: wait rather than fence twice


# -- one Fencer driven cycle by cycle, with a real store and real devices, on a clock the test moves ----------


class Watcher:
    """A site plugin that records the fencing notifications (and adds the ``held`` device kind)."""

    __name__ = "watcher"

    def __init__(self) -> None:
        self.fenced: list[dict[str, Any]] = []
        self.failed: list[list[str]] = []

    @hookimpl
    def omha_node_fenced(self, node: str, device: str, action: str, result: FenceResult) -> None:
        self.fenced.append({"node": node, "device": device, "action": action, "ok": result.ok})

    @hookimpl
    def omha_fence_failed(self, node: str, errors: list[str]) -> None:
        self.failed.append(errors)

    @hookimpl
    def omha_fence_devices(self) -> dict[str, type[FenceDevice]]:
        return {"held": Held}


class Held(FenceDevice):
    """A device kind whose calls hang until the test sets :attr:`release` (a PDU that stops answering)."""

    release = threading.Event()
    calls: list[str] = []

    def off(self, targets: list[str]) -> FenceResult:
        Held.calls.append(f"{self.current_node} off")
        Held.release.wait(60)
        return FenceResult(ok=False, message="no answer from the relay")

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, message="on (never called: off fails)")


class Rig:
    """One daemon's Fencer (node ``n1``) over a shared-directory store; ``n3`` is the lost node."""

    def __init__(self, tmp_path: Path, devices: list[dict[str, Any]], **fencing: Any) -> None:
        self.now = 0.0
        self.watcher = Watcher()
        pm = get_plugin_manager([self.watcher])
        raw = {"node": "n1", "sharedfs": {"path": str(tmp_path)}, "fencing": {"devices": devices, **fencing}}
        cfg = validate_config(raw, "omha.toml", pm)
        self.store = SharedDirStore(cfg)
        self.store.open()
        self.fencer = Fencer(cfg, pm, self.store, "n1", clock=lambda: self.now)

    def step(self, lost: dict[str, str] | None = None, quorum: bool = True) -> set[str]:
        """One daemon cycle: read the records, then step (as the daemon does)."""
        lost = {"n3": "inc1"} if lost is None else lost
        return self.fencer.step(lost, {"n1", "n2"}, self.store.fence_records(), quorum)

    async def finish(self, node: str = "n3") -> None:
        task = self.fencer.pending[node].task
        assert task is not None
        await task


def failing(tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "deadpdu",
        "kind": "command",
        "command": f'echo "$OMHA_ACTION $OMHA_TARGET" >> {tmp_path}/calls; echo PDU unreachable >&2; exit 1',
        "nodes": {"n3": "3"},
    }


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_retries_back_off_and_the_spacing_stops_growing_at_retry_max(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [failing(tmp_path)], retry_max=5.0)

    async def run() -> list[float]:
        spacing = []
        for attempt in range(1, 6):
            assert rig.step() == set()  # "wait": the groups stay down
            await rig.finish()
            p = rig.fencer.pending["n3"]
            assert p.attempts == attempt and len(calls(tmp_path)) == attempt
            spacing.append(p.next_try - rig.now)
            rig.now = p.next_try - 0.1  # just before the next try: nothing happens
            rig.step()
            assert rig.fencer.state["n3"]["retry_in"] == 0.1 and rig.fencer.pending["n3"].attempts == attempt
            rig.now = p.next_try
        return spacing

    assert asyncio.run(run()) == [2.0, 4.0, 5.0, 5.0, 5.0]
    assert calls(tmp_path) == ["reboot 3"] * 5
    assert len(rig.watcher.failed) == 5 and "PDU unreachable" in rig.watcher.failed[0][0]
    record = rig.store.fence_records()["n3"]
    assert record["result"] == "failed" and record["by"] == "n1" and "PDU unreachable" in record["message"]


def test_the_record_and_the_notification_say_what_the_device_really_did(tmp_path: Path) -> None:
    dev = {
        "name": "sw",
        "kind": "command",
        "command": f'echo "$OMHA_ACTION $OMHA_TARGET" >> {tmp_path}/calls',
        "action": "off",  # this device only ever switches off, whatever the cluster asks
        "nodes": {"n3": "3"},
    }
    rig = Rig(tmp_path, [dev], action="reboot")

    async def run() -> set[str]:
        rig.step()
        await rig.finish()
        return rig.step()

    assert asyncio.run(run()) == {"n3"}
    assert calls(tmp_path) == ["off 3"]
    record = rig.store.fence_records()["n3"]
    assert (record["action"], record["requested"], record["device"], record["kind"]) == (
        "off",
        "reboot",
        "sw",
        "command",
    )
    assert rig.watcher.fenced == [{"node": "n3", "device": "sw", "action": "off", "ok": True}]
    assert rig.fencer.state["n3"]["state"] == "fenced" and rig.fencer.state["n3"]["action"] == "off"


def test_takeover_after_every_device_failed_is_said_in_status(tmp_path: Path) -> None:
    rig = Rig(tmp_path, [failing(tmp_path)], on_fence_failure="takeover")

    async def run() -> set[str]:
        assert rig.step() == set()
        await rig.finish()
        return rig.step()

    assert asyncio.run(run()) == {"n3"}
    state = rig.fencer.state["n3"]
    assert state["state"] == "fence-failed" and state["takeover"] is True
    assert "PDU unreachable" in state["warning"] and "taken over anyway" in state["warning"]
    assert calls(tmp_path) == ["reboot 3"]  # no retry once taken over


def test_nothing_is_retried_while_a_device_call_overran_and_still_runs(tmp_path: Path) -> None:
    Held.release.clear()
    Held.calls.clear()
    held = {"name": "stuck", "kind": "held", "timeout": 0.1, "nodes": {"n3": "3"}}
    rig = Rig(tmp_path, [held], action="off")

    async def run() -> None:
        try:
            await scenario()
        finally:
            Held.release.set()  # before asyncio.run waits for the device's thread

    async def scenario() -> None:
        rig.step()
        p = rig.fencer.pending["n3"]
        for _ in range(500):  # up to 10 s for the overrun to be noticed
            if p.running:
                break
            await asyncio.sleep(0.02)
        rig.step()
        state = rig.fencer.state["n3"]
        assert state["state"] == "fence-failed" and state["still_running"] is True
        assert "stuck: off of n3 still running after 0.1 s" in state["errors"][-1]
        rig.now += 3600  # long past any retry delay: still nothing new while the call runs
        rig.step()
        # the node comes back, and is lost again in a new incarnation: no fencing beside the running call
        rig.step({})
        rig.step({"n3": "inc2"})
        assert rig.fencer.state["n3"]["reason"].startswith("waiting: stuck: off of n3 still running")
        assert Held.calls == ["n3 off"] and rig.fencer.pending["n3"].attempts == 0
        Held.release.set()
        await rig.fencer.finishing["n3"].task  # type: ignore[misc]
        rig.step({"n3": "inc2"})  # now the new incarnation is fenced
        await rig.finish()

    asyncio.run(run())
    assert Held.calls == ["n3 off", "n3 off"]
    record = rig.store.fence_records()["n3"]
    assert record["incarnation"] == "inc2" and record["result"] == "failed"


def test_an_uncovered_node_is_taken_over_unfenced_only_by_a_quorate_partition(tmp_path: Path) -> None:
    """Taking over a lost node's groups without fencing is a takeover all the same: a partition without quorum
    waits, however long the node has been lost (it used to hand the node over once the grace had passed)."""
    rig = Rig(tmp_path, [], unfenced_grace=1.0)
    assert rig.step() == set()  # lost now: the grace starts
    rig.now = 5.0
    assert rig.step(quorum=False) == set()
    assert rig.fencer.state["n3"]["state"] == "waiting" and "no quorum" in rig.fencer.state["n3"]["reason"]
    assert rig.step() == {"n3"}
    assert rig.fencer.state["n3"]["state"] == "unfenced"
