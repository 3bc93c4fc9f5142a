"""Parts of the node daemon (omha_core.node) that work alone: the groups as published after a shutdown, the
timing defaults, and the control socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from omha_core.node.control import ControlSocket, answers
from omha_core.node.publish import published_groups, still_holding
from omha_core.node.state import Timing
from omha_core.uniqueness import DuplicateNode


def test_after_the_shutdown_stopped_groups_are_published_at_stop_and_the_failed_stops_as_they_are() -> None:
    groups = {
        "a": {"level": "run", "state": "DONE"},
        "b": {"level": "stop", "state": "FAILED"},
        "c": {"level": "stop", "state": "STOPPING"},
        "d": {"level": "stop", "state": "DONE"},
    }
    holding = still_holding(groups)
    assert holding == {"b", "c"}
    out = published_groups(groups, holding)
    assert out["a"] == {"level": "stop", "state": "DONE"}
    assert out["b"] == groups["b"] and out["c"] == groups["c"]
    assert published_groups(groups, None) is groups  # before the shutdown: as the init reports them


def test_timing_defaults_follow_dead_after() -> None:
    t = Timing.from_config({"dead_after": 4, "failed_retry": 30})
    assert (t.heartbeat, t.dead_after, t.settle, t.isolate_after, t.failed_retry) == (0.5, 4.0, 4.0, 2.0, 30.0)
    t = Timing.from_config({"dead_after": 4, "failed_retry": 30, "settle": 0, "isolate_after": 3})
    assert (t.settle, t.isolate_after) == (0.0, 3.0)


def test_the_control_socket_answers_status_and_shutdown_and_refuses_a_second_daemon(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "omha.sock")

    async def ask(cmd: str) -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(json.dumps({"cmd": cmd}).encode() + b"\n")
        reply: dict[str, Any] = json.loads(await reader.readline())
        writer.close()
        return reply

    async def scenario() -> None:
        stopping = asyncio.Event()
        control = ControlSocket(path, lambda: {"node": "n1"}, stopping)
        await control.start()
        try:
            assert await answers(path)
            assert await ask("status") == {"ok": True, "status": {"node": "n1"}}
            assert (await ask("dance"))["ok"] is False
            assert not stopping.is_set()
            with pytest.raises(DuplicateNode):
                await ControlSocket(path, dict, asyncio.Event()).start()
            assert await ask("shutdown") == {"ok": True}
            assert stopping.is_set()
        finally:
            control.close()
        assert not Path(path).exists() and not await answers(path)

    asyncio.run(scenario())
