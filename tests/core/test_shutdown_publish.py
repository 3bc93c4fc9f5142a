"""The last status a daemon leaves in the store when it stops cleanly is its final one ("stopped").

While the groups stop, a background task keeps publishing (so that the others do not declare the node lost
meanwhile). A publication is a store call in a worker thread, which cancelling the task does not stop: when the
shutdown's final status ("stopped", every group at ``stop``) overtook a publication still in flight, the stale
one ("shutting down", the group still active) landed last. The others then saw a node gone while holding a
group and fenced it, although it had stopped cleanly (the fault campaign's seed 1823, a node restarted after a
clock jump). A store whose writes land out of order is the fault injected here: a real shared-directory store
where a publication made while stopping is held until the final status has landed (or, when the daemon keeps
its writes in order and the final one cannot land meanwhile, for ``HOLD`` seconds). Holding on that event rather
than for a fixed time makes the overtaking certain without the fix, however loaded the machine.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from omha_core.config import load_config
from omha_core.daemon import Daemon, open_backends
from omha_core.plugins import get_plugin_manager

#: how long a publication made while stopping is held at most: far longer than the group takes to stop, so that
#: one is in flight whenever the stop ends
HOLD = 3.0


def test_the_final_status_is_the_last_one_left_in_the_store(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    # stops in 0.3 s: long enough for the beat during the shutdown to publish, far shorter than HOLD
    server = "sh -c 'trap \"sleep 0.3; exit 0\" TERM; while :; do sleep 0.05; done'"
    (shared / "cltab").write_text(f"web:srv:run:respawn:{server}\n")
    (shared / "hactl").write_text("web run\n")
    (tmp_path / "omha.toml").write_text(
        'node = "n1"\n'
        f'[cluster]\nname = "shutdown-publish"\n[sharedfs]\npath = "{shared}"\n'
        "[timing]\nheartbeat = 0.05\ndead_after = 1.0\nsettle = 0.0\n"
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\nlog = "{tmp_path / "omha.log"}"\n'
        '[quorum]\npolicy = "ignore"\n'
    )
    daemon = Daemon(load_config(str(tmp_path / "omha.toml")), get_plugin_manager())
    store = daemon.store
    publish = store.publish
    landed: list[dict[str, Any]] = []
    final_landed = threading.Event()

    def out_of_order(node: str, doc: dict[str, Any]) -> None:
        if doc["shutting_down"] and not doc["stopped"]:
            final_landed.wait(HOLD)
        publish(node, doc)
        landed.append(doc)
        if doc["stopped"]:
            final_landed.set()

    store.publish = out_of_order  # type: ignore[method-assign]

    async def run_then_stop() -> int:
        running = asyncio.ensure_future(daemon.run())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _runs(daemon, "web"):
            await asyncio.sleep(0.05)
        assert _runs(daemon, "web"), "the group never ran"
        daemon.stopping.set()
        return await running

    assert asyncio.run(run_then_stop()) == 0  # which also waits for the worker threads: every write has landed
    assert any(d["shutting_down"] and not d["stopped"] for d in landed), "no publication while stopping"
    last = _status(tmp_path, "n1")
    assert last["stopped"] is True, f"the store was left with seq {last['seq']}, not the final status"
    assert last["seq"] == max(d["seq"] for d in landed)


def _runs(daemon: Daemon, group: str) -> bool:
    return daemon.init is not None and daemon.init.status().get(group, {}).get("level") == "run"


def _status(tmp_path: Path, node: str) -> dict[str, Any]:
    """What the others read: the node's status in a freshly opened store."""
    store, membership = open_backends(load_config(str(tmp_path / "omha.toml")), get_plugin_manager())
    try:
        doc: dict[str, Any] = dict(store.statuses()[node])
        return doc
    finally:
        membership.close()
        store.close()
