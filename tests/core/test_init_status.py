"""status(): the shape `omha status --json` reports, on_change, secrets kept out, options checked."""

from __future__ import annotations

import json
import time

import pytest

from omha_core.errors import ConfigError
from omha_core.init import DONE, InitOptions
from tests.core.init_helpers import run, running_init, wait_until


def test_status_shape_and_on_change() -> None:
    cltab = (
        "web:srv:run:respawn:sleep 300\n"
        "web:pre:run:wait:exit 0\n"
        "web:dark:run:off:@file /nonexistent/x password=hunter2 community=public user=admin\n"
        "db:x:run:once:true\n"
    )
    changes: list[float] = []

    async def scenario() -> None:
        async with running_init(cltab, on_change=lambda: changes.append(time.time())) as (init, _):
            t0 = time.time()
            init.tell("web", "run")
            assert await init.wait_settled("web", 15) == DONE
            status = init.status()
            assert list(status) == ["web"]  # only told groups
            web = status["web"]
            assert web["level"] == "run" and web["state"] == "DONE" and t0 <= web["since"] <= time.time()
            assert web["entries"]["srv"] == {
                "mode": "respawn",
                "pid": web["entries"]["srv"]["pid"],
                "state": "running",
                "restarts": 0,
                "exit": None,
                "command": "sleep 300",
            }
            assert isinstance(web["entries"]["srv"]["pid"], int)
            assert web["entries"]["pre"]["state"] == "done" and web["entries"]["pre"]["exit"] == 0
            dark = web["entries"]["dark"]
            assert dark["state"] == "off"
            assert dark["command"] == "@file /nonexistent/x password=*** community=*** user=admin"
            assert "hunter2" not in json.dumps(status)
            assert json.loads(json.dumps(status)) == status
            assert changes and all(t0 <= t for t in changes)
            n = len(changes)
            init.tell("web", "down")
            assert await init.wait_settled("web", 15) == DONE
            assert len(changes) > n
            assert init.status()["web"]["since"] >= web["since"]

    run(scenario())


def test_restarts_are_reported_as_they_happen() -> None:
    async def scenario() -> None:
        seen: list[int] = []
        holder: dict[str, object] = {}

        def changed() -> None:
            init = holder.get("init")
            if init is not None:
                seen.append(init.status()["g"]["entries"]["r"]["restarts"])  # type: ignore[attr-defined]

        async with running_init("g:r:run:respawn:sleep 0.02\n", on_change=changed, respawn_limit=1000) as (init, _):
            holder["init"] = init
            init.tell("g", "run")
            await wait_until(lambda: bool(seen) and max(seen) >= 3, what="three restarts reported")
            assert seen == sorted(seen)

    run(scenario())


def test_options_defaults_and_errors() -> None:
    opts = InitOptions.from_mapping({})
    assert opts.stop_grace == (0.0, 5.0, 10.0)
    assert (opts.respawn_limit, opts.respawn_window, opts.respawn_pause, opts.agent_timeout) == (5, 1.0, 60.0, 60.0)
    assert InitOptions.from_mapping({"stop_grace": [0, 1, 2], "respawn_limit": 7}).stop_grace == (0.0, 1.0, 2.0)
    with pytest.raises(ConfigError, match=r"\[init\] stop_grace: expected a list of 3 delays"):
        InitOptions.from_mapping({"stop_grace": [1, 2]})
    with pytest.raises(ConfigError, match=r"\[init\] respawn_limit: expected a whole number greater than zero"):
        InitOptions.from_mapping({"respawn_limit": 0})
