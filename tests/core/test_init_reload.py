"""reload(cltab): changed entries restarted, removed ones stopped, unchanged ones untouched, new ones started."""

from __future__ import annotations

from pathlib import Path

from omha_core.cltab import parse_cltab
from omha_core.init import DONE
from tests.core.init_helpers import events, pid_alive, probe, run, running_init, wait_until

BEFORE = """
g:same:run:respawn:sleep 300
g:changed:run:respawn:sleep 300
g:gone:run:respawn:sleep 300
g:tooff:run:respawn:sleep 300
g:moved:run:respawn:sleep 300
h:quiet:run:respawn:sleep 300
"""
AFTER = """
# comments and line numbers moved: not a change
g:same:run:respawn:sleep 300
g:changed:run:respawn:sleep 301
g:tooff:run:off:sleep 300
g:moved:other:respawn:sleep 300
g:new:run:respawn:sleep 300
h:quiet:run:respawn:sleep 300
"""


def test_reload_applies_only_what_changed() -> None:
    async def scenario() -> None:
        async with running_init(BEFORE) as (init, _):
            init.tell("g", "run")
            init.tell("h", "run")
            assert await init.wait_settled("g", 15) == DONE
            assert await init.wait_settled("h", 15) == DONE
            before = {t: e["pid"] for t, e in init.status()["g"]["entries"].items()}
            quiet = init.status()["h"]["entries"]["quiet"]["pid"]
            h_since = init.status()["h"]["since"]

            init.reload(parse_cltab(AFTER))
            assert await init.wait_settled("g", 15) == DONE
            entries = init.status()["g"]["entries"]
            assert list(entries) == ["same", "changed", "tooff", "moved", "new"]
            assert entries["same"]["pid"] == before["same"] and pid_alive(before["same"])
            assert entries["changed"]["state"] == "running"
            assert entries["changed"]["pid"] != before["changed"] and not pid_alive(before["changed"])
            assert entries["changed"]["command"] == "sleep 301"
            assert not pid_alive(before["gone"])
            assert entries["tooff"]["state"] == "off" and not pid_alive(before["tooff"])
            assert entries["moved"]["state"] == "stopped" and not pid_alive(before["moved"])
            assert entries["new"]["state"] == "running"
            # a group the new file does not change is not even re-told
            assert init.status()["h"]["entries"]["quiet"]["pid"] == quiet
            assert init.status()["h"]["since"] == h_since

    run(scenario())


def test_reload_stops_removed_entries_before_starting(tmp_path: Path) -> None:
    log = str(tmp_path / "log")
    before = "".join(f"g:{t}:run:respawn:{probe(t, log)}\n" for t in ("a", "b", "c"))
    after = f"g:b:run:respawn:{probe('b', log)}\ng:d:run:respawn:{probe('d', log)}\n"

    async def scenario() -> None:
        async with running_init(before) as (init, _):
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(log)) == 3, what="three starts")
            init.reload(parse_cltab(after))
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(lambda: len(events(log)) == 6, what="d to start")
            # the removed shell entries are stopped together, before the new one starts
            assert sorted(events(log)[3:5]) == ["stop:a", "stop:c"] and events(log)[5] == "start:d"

    run(scenario())


def test_reload_of_an_untold_group_starts_nothing(tmp_path: Path) -> None:
    flag = tmp_path / "flag"

    async def scenario() -> None:
        async with running_init("g:a:run:once:true\n") as (init, _):
            init.reload(parse_cltab(f"g:a:run:once:touch {flag}\n"))
            assert init.status() == {}
            init.tell("g", "run")
            assert await init.wait_settled("g", 15) == DONE
            await wait_until(flag.exists, what="the new command to run")

    run(scenario())
