"""A reboot fence is published as soon as the node is off: the takeover does not wait for the pause and the
power-on (a power cycle's off is the fence; the on only brings the machine back)."""

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


class Cycling(FenceDevice):
    """A verified off; an on that waits for the test (or raises, when :attr:`on_fails`)."""

    power_on = threading.Event()
    on_fails = False

    def off(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, verified=True, state="off", message=f"{self.name}: off {targets[0]} (verified)")

    def on(self, targets: list[str]) -> FenceResult:
        Cycling.power_on.wait(30)
        if Cycling.on_fails:
            raise OSError("the relay stopped answering")
        return FenceResult(ok=True, message=f"{self.name}: on")


class Site:
    __name__ = "site"

    def __init__(self) -> None:
        self.fenced: list[tuple[str, str]] = []

    @hookimpl
    def omha_fence_devices(self) -> dict[str, type[FenceDevice]]:
        return {"cycling": Cycling}

    @hookimpl
    def omha_node_fenced(self, node: str, device: str, action: str, result: FenceResult) -> None:
        self.fenced.append((node, action))


def rig(tmp_path: Path) -> tuple[Fencer, SharedDirStore, Site]:
    site = Site()
    pm = get_plugin_manager([site])
    devices = [{"name": "pdu", "kind": "cycling", "reboot_pause": 0, "nodes": {"n3": "3"}}]
    raw = {"node": "n1", "sharedfs": {"path": str(tmp_path)}, "fencing": {"devices": devices}}
    cfg = validate_config(raw, "omha.toml", pm)
    store = SharedDirStore(cfg)
    store.open()
    return Fencer(cfg, pm, store, "n1"), store, site


async def until(predicate: Any, what: str) -> None:
    for _ in range(1000):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def step(fencer: Fencer, store: SharedDirStore) -> set[str]:
    return fencer.step({"n3": "inc1"}, {"n1"}, store.fence_records(), True)


def test_the_node_is_fenced_once_off_before_its_power_on(tmp_path: Path) -> None:
    fencer, store, site = rig(tmp_path)
    Cycling.power_on.clear()
    Cycling.on_fails = False
    woken = []
    fencer.on_fenced = lambda: woken.append(True)

    async def run() -> None:
        assert step(fencer, store) == set()
        await until(lambda: woken, "the daemon to be woken")
        # the power-on has not happened yet, and the node is already safe to take over from
        assert fencer.pending["n3"].busy
        record = store.fence_records()["n3"]
        assert record["ok"] and record["verified"] and record["incarnation"] == "inc1"
        assert "power-on follows" in record["message"]
        assert step(fencer, store) == {"n3"}
        await until(lambda: site.fenced, "the notification")
        Cycling.power_on.set()
        task = fencer.pending["n3"].task
        assert task is not None
        await task

    asyncio.run(run())
    record = store.fence_records()["n3"]
    assert record["ok"] and "then on again" in record["message"]
    assert site.fenced == [("n3", "reboot")]  # told once
    assert len(woken) == 1


def test_a_failed_power_on_after_the_off_leaves_the_node_fenced(tmp_path: Path) -> None:
    fencer, store, site = rig(tmp_path)
    Cycling.power_on.set()
    Cycling.on_fails = True

    async def run() -> None:
        step(fencer, store)
        task = fencer.pending["n3"].task
        assert task is not None
        await task

    try:
        asyncio.run(run())
    finally:
        Cycling.on_fails = False
    record = store.fence_records()["n3"]
    assert record["ok"] and record["result"] == "ok"
    assert step(fencer, store) == {"n3"}
    assert site.fenced == [("n3", "reboot")]
