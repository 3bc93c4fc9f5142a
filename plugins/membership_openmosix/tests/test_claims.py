"""Claims and fence locks replicated over every up node's MFS directory: exactly one winner, nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omha_membership_openmosix.store import OpenMosixStore
from omha_testing.mosix import FakeMosix

from omha_core.errors import StoreError

GROUPS = 12


def store(mosix: FakeMosix, node: int) -> OpenMosixStore:
    s = OpenMosixStore(mosix.config(node))
    s.open()
    return s


def entry_nodes(mosix: FakeMosix, group: str) -> dict[str, str]:
    """Which node's directory holds a copy of ``group``'s claim, naming which holder."""
    out = {}
    for node_dir in sorted(mosix.mfsbase.iterdir()):
        path = node_dir / mosix.varpath / "claims" / f"{group}.json"
        if path.exists():
            out[node_dir.name] = json.loads(path.read_text())["node"]
    return out


@pytest.fixture
def five(tmp_path: Path) -> FakeMosix:
    return FakeMosix(tmp_path / "cluster", nodes=range(1, 6))


def race(mosix: FakeMosix, tmp: Path, nodes: list[int]) -> dict[int, dict[str, bool]]:
    """Start one worker process per node, release them at once, return what each got."""
    tmp.mkdir()
    go = tmp / "go"
    procs: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for n in nodes:
            raw = json.dumps(mosix.raw_config(n))
            args = [raw, str(tmp / f"ready{n}"), str(go), str(tmp / f"out{n}"), str(GROUPS)]
            procs[n] = subprocess.Popen(
                [sys.executable, "-m", "omha_testing.claim_worker", *args], cwd="/"
            )
        deadline = time.monotonic() + 20
        while not all((tmp / f"ready{n}").exists() for n in nodes):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for p in procs.values()), "a worker died while starting"
            time.sleep(0.02)
        go.touch()
        for p in procs.values():
            assert p.wait(timeout=30) == 0
        return {n: json.loads((tmp / f"out{n}").read_text()) for n in nodes}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_claim_is_won_exactly_once_by_racing_processes(five: FakeMosix, tmp_path: Path) -> None:
    nodes = [1, 2, 3, 4, 5]
    for round_ in (1, 2):
        got = race(five, tmp_path / f"round{round_}", nodes)
        for key in [f"g{i}" for i in range(GROUPS)] + ["fence:99"]:
            winners = [n for n in nodes if got[n][key]]
            assert len(winners) == 1, f"round {round_}: {key} won by {winners}"
        holders = store(five, 3).claims()
        assert sorted(holders) == sorted(f"g{i}" for i in range(GROUPS))
        for i in range(GROUPS):
            winner = next(n for n in nodes if got[n][f"g{i}"])
            assert holders[f"g{i}"]["node"] == str(winner)
            assert set(entry_nodes(five, f"g{i}").values()) == {str(winner)}
            assert len(entry_nodes(five, f"g{i}")) == 5  # a copy on every up node
            store(five, winner).release_claim(f"g{i}", str(winner))
        assert store(five, 1).claims() == {}
        for n in nodes:  # fence locks are never released: clear the way for the next round by hand
            (five.node_dir(n) / "fence" / "99.inc-x.lock").unlink(missing_ok=True)


def test_claim_is_idempotent_and_exclusive(mosix: FakeMosix) -> None:
    s1, s2 = store(mosix, 1), store(mosix, 2)
    assert s1.claim("web", "1", "a")
    assert s1.claim("web", "1", "a")
    assert not s2.claim("web", "2", "b")
    assert s2.claims() == {"web": {"node": "1", "incarnation": "a", "gen": 1}}
    s2.release_claim("web", "2")  # not the holder: no-op
    s2.break_claim("web", "3")
    assert s2.claims()["web"]["node"] == "1"
    s1.release_claim("web", "1")
    assert s2.claims() == {}
    assert s2.claim("web", "2", "b")
    assert {k: s1.claims()["web"][k] for k in ("node", "incarnation")} == {"node": "2", "incarnation": "b"}


def test_a_claim_outlives_its_holder_until_broken_after_fencing(mosix: FakeMosix) -> None:
    s1, s2, s3 = store(mosix, 1), store(mosix, 2), store(mosix, 3)
    assert s2.claim("db", "2", "inc2")
    mosix.disconnect(2)  # node 2 dies: its own directory is gone with it
    assert s1.claims()["db"]["node"] == "2"
    assert not s1.claim("db", "1", "inc1")
    s1.break_claim("db", "2")  # the core does this once node 2 is fenced
    assert s3.claims() == {}
    assert s3.claim("db", "3", "inc3")
    mosix.reconnect(2)  # node 2 reboots with its old copy of the claim still on its disk
    assert entry_nodes(mosix, "db")["2"] == "2"
    for s in (s1, s3, store(mosix, 2)):
        assert s.claims()["db"]["node"] == "3"
    assert not s1.claim("db", "1", "inc1")
    assert s3.claim("db", "3", "inc3")  # the holder heals its claim onto the returned node
    assert entry_nodes(mosix, "db") == {"1": "3", "2": "3", "3": "3"}


def test_a_release_while_a_node_was_down_leaves_nothing_in_the_way(mosix: FakeMosix) -> None:
    s1, s2 = store(mosix, 1), store(mosix, 2)
    assert s1.claim("web", "1", "a")
    mosix.disconnect(3)
    s1.release_claim("web", "1")
    tomb = json.loads((mosix.node_dir(2) / "claims" / ".dead.web.1.json").read_text())
    assert tomb == {"group": "web", "node": "1", "gen": 1}  # node 3's copy could not be removed: marked dead
    mosix.reconnect(3)
    assert entry_nodes(mosix, "web") == {"3": "1"}  # the stale copy came back with node 3
    assert s2.claims() == {}
    assert s2.claim("web", "2", "b")
    assert entry_nodes(mosix, "web") == {"1": "2", "2": "2", "3": "2"}


def test_a_node_that_joins_later_gets_a_copy_when_the_holder_claims_again(mosix: FakeMosix) -> None:
    mosix.add_node(4, status=1)
    s1 = store(mosix, 1)
    assert s1.claim("web", "1", "a")
    assert "4" not in entry_nodes(mosix, "web")
    mosix.up(4)
    assert not store(mosix, 4).claim("web", "4", "d")
    assert s1.claim("web", "1", "a")
    assert entry_nodes(mosix, "web")["4"] == "1"


def test_an_up_node_whose_directory_cannot_be_written_fails_the_claim_loudly(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    (mosix.mfsbase / "3").rename(mosix.root / "three")
    (mosix.mfsbase / "3").write_text("not a directory\n")
    with pytest.raises(StoreError, match=r"cannot write the claim of 'web' on node 3"):
        s1.claim("web", "1", "a")
    assert entry_nodes(mosix, "web") == {}  # what was linked on nodes 1 and 2 was taken back
    with pytest.raises(StoreError, match=r"cannot write the fence lock of node 2"):
        s1.fence_lock("2", "i", "1")


def test_a_garbled_claim_file_blocks_and_is_reported(mosix: FakeMosix) -> None:
    s1 = store(mosix, 1)
    (mosix.node_dir(2) / "claims" / "web.json").parent.mkdir(parents=True, exist_ok=True)
    (mosix.node_dir(2) / "claims" / "web.json").write_text("{garbage")
    assert s1.claims() == {"web": {"node": "?", "incarnation": "?", "gen": -1}}
    assert not s1.claim("web", "1", "a")
    assert entry_nodes(mosix, "db") == {}


def test_fence_lock_once_per_incarnation_and_latest_fence_record(mosix: FakeMosix) -> None:
    s1, s2, s3 = store(mosix, 1), store(mosix, 2), store(mosix, 3)
    assert s1.fence_lock("3", "inc-a", "1")
    assert s1.fence_lock("3", "inc-a", "1")
    assert not s2.fence_lock("3", "inc-a", "2")
    assert s2.fence_lock_holder("3", "inc-a") == "1"
    assert s2.fence_lock_holder("3", "inc-z") is None
    assert s2.fence_lock("3", "inc-b", "2")
    mosix.disconnect(1)  # the fencer dies: its lock is still known from the other nodes' copies
    assert s3.fence_lock_holder("3", "inc-a") == "1"
    assert s3.fence_lock("3", "inc-a.1", "3")  # the core's hand-over key: a new lock
    mosix.reconnect(1)
    s1.put_fence_record("3", {"incarnation": "inc-a", "result": "off", "fencer": "1"})
    s2.put_fence_record("3", {"incarnation": "inc-b", "result": "failed", "fencer": "2"})
    mosix.disconnect(2)  # the record survives its writer
    assert s3.fence_records() == {"3": {"incarnation": "inc-b", "result": "failed", "fencer": "2"}}
    assert s1.fence_records()["3"]["result"] == "failed"


@pytest.fixture
def no_leftovers(mosix: FakeMosix) -> Iterator[None]:
    yield
    for node in ("1", "2", "3"):
        for sub in ("claims", "fence"):
            d = mosix.node_dir(node) / sub
            assert not [f for f in os.listdir(d) if f.startswith((".tmp.", ".grave."))] if d.exists() else True


@pytest.mark.usefixtures("no_leftovers")
def test_claims_leave_no_temporary_files(mosix: FakeMosix) -> None:
    s1, s2 = store(mosix, 1), store(mosix, 2)
    for i in range(5):
        assert s1.claim(f"g{i}", "1", "a")
        assert not s2.claim(f"g{i}", "2", "b")
        s1.release_claim(f"g{i}", "1")
