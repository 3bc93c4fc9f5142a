"""Multi-node behaviour with real ``omha daemon`` processes sharing a directory, checked by the safety checker.

Each group's run-level command holds an exclusive lock while it runs (:func:`omha_testing.cluster.guarded`); any
moment at which two nodes ran a group shows up as an OVERLAP line and fails the test.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, guarded

from omha_core.ranking import rank_key

pytestmark = pytest.mark.slow


def cltab_for(tmp: Path, groups: list[str], test: dict[str, str] | None = None) -> str:
    lines = []
    for g in groups:
        if test and g in test:
            lines.append(f"{g}:{g}_fit:test:test:{test[g]}")
        lines.append(f"{g}:{g}_srv:run,2:respawn:{guarded(tmp, g)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[object]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(**kw: object) -> Cluster:
        c = Cluster(tmp_path, **kw)  # type: ignore[arg-type]
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()
        c.assert_no_overlap()


def where(c: Cluster, groups: list[str]) -> dict[str, list[str]]:
    return {g: c.running(g) for g in groups}


@pytest.mark.parametrize("n", [3, 5])
def test_every_group_starts_exactly_once_and_spreads(make_cluster, tmp_path: Path, n: int) -> None:  # type: ignore[no-untyped-def]
    groups = [f"g{i}" for i in range(2 * n)]
    c = make_cluster(nodes=n, cltab=cltab_for(tmp_path, groups), hactl="".join(f"{g} run\n" for g in groups))
    c.start()
    c.wait_for("all groups running", lambda: all(len(v) == 1 for v in where(c, groups).values()), 60)
    placed = where(c, groups)
    assert all(len(v) == 1 for v in placed.values()), placed
    per_node = {node: sum(1 for v in placed.values() if v == [node]) for node in c.names}
    assert max(per_node.values()) <= 4, f"starts piled up: {per_node}"  # 2n groups over n nodes
    for g in groups:  # each started exactly once
        assert len([ln for ln in c.safety_log(g) if ln.startswith("start")]) == 1, c.safety_log(g)


def test_tell_changes_level_in_place_and_stop_stops_everywhere(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster(nodes=3, cltab=cltab_for(tmp_path, ["web"]), hactl="web run\n")
    c.start()
    node = c.wait_running("web")
    c.omha("n1", "tell", "web", "2")
    c.wait_for("web at level 2", lambda: c.report()["groups"]["web"]["want"] == "2" and c.running("web") == [node])
    # run,2 matches both levels: the server was not restarted and did not move
    assert len([ln for ln in c.safety_log("web") if ln.startswith("start")]) == 1
    c.omha("n2", "tell", "web", "stop")
    c.wait_for("web stopped everywhere", lambda: not c.report()["groups"]["web"]["instances"])
    assert "web stop" in (c.shared / "hactl").read_text()


def test_sigkill_moves_groups_and_rejoin_does_not_steal(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    groups = ["a", "b", "c"]
    c = make_cluster(nodes=3, cltab=cltab_for(tmp_path, groups), hactl="a run\nb run\nc run\n")
    c.start()
    c.wait_for("all running", lambda: all(len(v) == 1 for v in where(c, groups).values()), 60)
    victim = c.running("a")[0]
    held = [g for g in groups if c.running(g) == [victim]]
    c.kill(victim, signal.SIGKILL)
    for g in held:
        c.wait_running(g, exclude=(victim,))
    # the report takes the freshest node's view: one that has not judged the victim lost yet (its own dead_after
    # runs on its own clock, and a loaded machine delays its cycle) may still be the freshest for a moment
    c.wait_for(f"{victim} reported lost", lambda: c.report()["nodes"][victim]["state"] in ("lost", "unfenced"), 10)
    placed = where(c, groups)
    c.start(victim)
    c.wait_for(f"{victim} up again", lambda: c.report()["nodes"][victim]["state"] == "up")
    time.sleep(2.0)  # give the rejoined node several cycles in which it could (wrongly) grab work
    assert where(c, groups) == placed


def group_ranked_last_on(node: str, nodes: list[str]) -> str:
    """A group name for which ``node`` is the last choice of idle nodes (so the others are tried first)."""
    for i in range(1000):
        name = f"web{i}"
        ranked = sorted(nodes, key=lambda n: rank_key(name, n, 0))
        if ranked[-1] == node:
            return name
    raise AssertionError("no such name")


def test_failed_test_lands_group_on_another_node(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    group = group_ranked_last_on("n3", ["n1", "n2", "n3"])
    # only n3 passes the fitness test, and n3 is the last node the cluster would pick
    cltab = cltab_for(tmp_path, [group], test={group: 'test "$OMHA_NODE" = n3'})
    c = make_cluster(nodes=3, cltab=cltab, hactl=f"{group} run\n")
    c.start()
    assert c.wait_running(group, 60) == "n3"
    assert f"{group}: test FAILED on this node" in c.log("n1")
    # the run-level command never started anywhere but on n3
    starts = [ln.split()[1] for ln in c.safety_log(group) if ln.startswith("start")]
    assert starts == ["n3"]


def test_node_whose_test_failed_is_tried_again_after_failed_retry(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # no node is fit at first; then one becomes fit, with nothing in cltab or hactl changing
    cltab = cltab_for(tmp_path, ["web"], test={"web": f'test -f {tmp_path}/fit-"$OMHA_NODE"'})
    c = make_cluster(nodes=3, cltab=cltab, hactl="web run\n", config={"timing": {"failed_retry": 1.0}})
    c.start()
    c.wait_for("web to fail everywhere", lambda: all("web: test FAILED on this node" in c.log(n) for n in c.names))
    (tmp_path / "fit-n2").touch()
    assert c.wait_running("web", 20) == "n2"
    assert "web: failed here" in c.log("n2") and "this node is a candidate again" in c.log("n2")


def test_removed_from_hactl_stops_everywhere(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster(nodes=3, cltab=cltab_for(tmp_path, ["a", "b"]), hactl="a run\nb run\n")
    c.start()
    c.wait_for("both running", lambda: all(len(v) == 1 for v in where(c, ["a", "b"]).values()), 60)
    (c.shared / "hactl").write_text("b run\n")
    c.wait_for("a stopped", lambda: not c.report()["groups"].get("a", {}).get("instances"))
    assert len(c.running("b")) == 1


def test_bad_input_is_reported_and_nothing_is_lost(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster(nodes=3, cltab=cltab_for(tmp_path, ["web"]), hactl="web run\n")
    c.start()
    node = c.wait_running("web")
    # garbage in another "node"'s status, and a truncated one
    (c.shared / "nodes" / "ghost").mkdir()
    (c.shared / "nodes" / "ghost" / "status.json").write_bytes(b"\x00\xff{not json")
    (c.shared / "nodes" / "trunc").mkdir()
    (c.shared / "nodes" / "trunc" / "status.json").write_text('{"node": "trunc", "seq": ')
    # an invalid cltab and an hactl naming an unknown group, written by hand
    good_cltab = (c.shared / "cltab").read_text()
    (c.shared / "cltab").write_text(good_cltab + "web:broken:run:sometimes:true\n")
    (c.shared / "hactl").write_text("web run\nghost run\n")

    def reported() -> bool:
        rep = c.report()
        errs = rep["config"]["errors"]
        return (
            any("mode 'sometimes'" in e for e in errs)
            and rep["groups"].get("ghost", {}).get("why") == "not defined in cltab"
            and bool(rep["nodes"].get("ghost", {}).get("problem"))
        )

    c.wait_for("problems reported in status", reported)
    out = c.omha("n1", "status")
    assert "mode 'sometimes' is not one of" in out.stdout and "status unreadable" in out.stdout
    assert c.running("web") == [node]  # the last good cltab keeps running
    assert all(c.procs[n].poll() is None for n in c.names)  # no daemon crashed
    # a daemon started now adopts the last good version, from the copy of a node that runs it
    other = next(n for n in c.names if n != node)
    c.kill(other, signal.SIGTERM)
    c.start(other)
    c.wait_for(f"{other} to adopt a node's copy", lambda: f"from {c.shared}/nodes/" in c.log(other))
    shown = c.omha(other, "show", "cltab")
    assert shown.stdout == good_cltab and "runs" in shown.stderr
    (c.shared / "cltab").write_text(good_cltab)
    c.wait_for("error cleared", lambda: not c.report()["config"]["errors"])


def test_quorum_lost_stops_groups(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster(nodes=3, cltab=cltab_for(tmp_path, ["web"]), hactl="web run\n")
    c.start()
    node = c.wait_running("web")
    others = [n for n in c.names if n != node]
    for n in others:
        c.kill(n, signal.SIGKILL)
    c.wait_for("web stopped for lack of quorum", lambda: not c.running("web"))
    assert "no quorum" in json.dumps(c.report()["quorum"]) or c.report()["quorum"]["have"] is False


def test_python_api_drives_a_one_node_cluster(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """OpenMosix::HA's synopsis: ``ha = HA(config); ha.tell("foo", "run"); ha.status()`` on a one-node cluster."""
    from omha_core import HA

    cltab = cltab_for(tmp_path, ["foo"]) + "foo:more:runmore:respawn:sleep 100000\n"
    c = make_cluster(nodes=1, cltab=cltab)
    c.start()
    ha = HA(str(c.config_path("n1")))
    ha.tell("foo", "run")
    c.wait_for("foo running", lambda: ha.status()["groups"]["foo"]["running_on"] == ["n1"])
    ha.tell("foo", "runmore")  # "this stops everything started by runlevel run"
    c.wait_for(
        "foo at runmore",
        lambda: (
            ha.status()["groups"]["foo"]["running_on"] == ["n1"]
            and ha.status()["groups"]["foo"]["instances"]["n1"]["level"] == "runmore"
        ),
    )
    assert not [ln for ln in c.safety_log("foo") if ln.startswith("OVERLAP")]
    status = ha.status()
    assert status["nodes"]["n1"]["state"] == "up" and status["quorum"]["have"] is True
    ha.tell("foo", "stop")
    c.wait_for("foo stopped", lambda: not ha.status()["groups"]["foo"]["instances"])


def test_systemd_notify_ready_then_stopping(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``Type=notify``: READY=1 once the daemon runs its loop, STOPPING=1 when it begins to stop."""
    import socket

    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        c = make_cluster(nodes=1, env={"NOTIFY_SOCKET": path})
        c.start()
        # one datagram may carry several newline-separated assignments (sd_notify(3)), STATUS= among them
        assert "READY=1" in sock.recv(4096).decode().split("\n")
        c.kill("n1", signal.SIGTERM)
        while "STOPPING=1" not in sock.recv(4096).decode().split("\n"):
            pass  # STATUS= updates may come before it; a missing STOPPING=1 times out (30 s)


def test_node_that_loses_the_store_stops_its_groups(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """n1 reaches the shared directory through a symlink that the test breaks: n1 can no longer read or publish.
    It must stop its groups by itself, and n2 takes them over (after the unfenced grace: no fence device)."""
    web = group_ranked_last_on("n2", ["n1", "n2"])  # so that it starts on n1
    c = make_cluster(
        nodes=2,
        cltab=cltab_for(tmp_path, [web]),
        hactl=f"{web} run\n",
        config={"quorum": {"policy": "ignore"}, "fencing": {"unfenced_grace": 1.5}},
    )
    link = tmp_path / "n1-view-of-shared"
    link.symlink_to(c.shared)
    cfg = c.config_path("n1")
    cfg.write_text(cfg.read_text().replace(f'"{c.shared}"', f'"{link}"'))
    c.start()
    c.wait_for("web running on n1", lambda: c.running(web) == ["n1"])
    link.unlink()
    link.symlink_to(tmp_path / "nowhere")  # n1's store calls now fail
    assert c.wait_running(web, 30, exclude=("n1",)) == "n2"
    c.wait_for("n1 to report the lost store", lambda: "no contact with the store" in c.log("n1"))
    starts = [ln.split()[1] for ln in c.safety_log(web) if ln.startswith("start")]
    assert starts == ["n1", "n2"]
    link.unlink()
    link.symlink_to(c.shared)  # contact back: n1 stays out of web's way
    c.wait_for("n1 back", lambda: "contact with the store is back" in c.log("n1"))
    time.sleep(1.0)
    assert c.running(web) == ["n2"]


def test_load_show_tell_through_the_store_without_a_daemon(tmp_path: Path) -> None:
    """The operator commands work on any machine with the config: nothing runs here, they use the store."""
    c = Cluster(tmp_path, 1)
    bad = tmp_path / "bad.cltab"
    bad.write_text("web:a:run:once:true\nweb:a:run:once:true\nweb:b:run:never:true\n")
    out = c.omha("n1", "load", "--cltab", str(bad), check=False)
    assert out.returncode == 1 and "nothing published" in out.stderr
    assert f"{bad}:2: tag 'a' already used on line 1" in out.stderr and f"{bad}:3: mode 'never'" in out.stderr
    assert not (c.shared / "cltab").exists()
    good = tmp_path / "good.cltab"
    good.write_text("web:a:run:respawn:sleep 100\n")
    c.omha("n1", "load", "--cltab", str(good))
    assert c.omha("n1", "show", "cltab").stdout == good.read_text()
    c.omha("n1", "tell", "web", "run")
    c.omha("n1", "tell", "db", "2")
    assert c.omha("n1", "show", "hactl").stdout == "web run\ndb 2\n"
    out = c.omha("n1", "tell", "web", "no-such level", check=False)
    assert out.returncode == 1 and "must be any characters but whitespace" in out.stderr
    # an invalid hactl written by hand is refused by tell rather than silently replaced
    (c.shared / "hactl").write_text("web r/n\n")
    out = c.omha("n1", "tell", "web", "stop", check=False)
    assert out.returncode == 1 and "the newest hactl is invalid" in out.stderr


def test_sigterm_stops_groups_in_reverse_cltab_order_then_exits_0(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "order.log"

    def entry(group: str) -> str:
        trap = f"trap 'echo stop {group} >> {log}; exit 0' INT TERM"
        body = f"{trap}; echo start {group} >> {log}; while :; do sleep 0.05; done"
        return f'{group}:{group}srv:run:respawn:sh -c "{body}"\n'

    c = make_cluster(nodes=1, cltab=entry("a") + entry("b") + entry("c"), hactl="a run\nb run\nc run\n")
    c.start()
    c.wait_for("all three running", lambda: all(c.running(g) == ["n1"] for g in "abc"))
    # each entry's state is in the store and in `omha status --json`
    rep = json.loads(c.omha("n1", "status", "--json").stdout)
    assert rep["nodes"]["n1"]["containment"] in ("cgroup", "environment marker")
    entry = rep["groups"]["a"]["instances"]["n1"]["entries"]["asrv"]
    assert entry["mode"] == "respawn" and entry["state"] == "running" and entry["restarts"] == 0
    assert "echo start a" in Path(f"/proc/{entry['pid']}/cmdline").read_text()
    c.kill("n1", signal.SIGTERM)  # waits for the daemon to exit
    assert c.procs["n1"].returncode == 0
    lines = log.read_text().splitlines()
    assert sorted(lines[:3]) == ["start a", "start b", "start c"]
    # reverse cltab order, each stopped before the next (a trap may run twice: INT then TERM, stop_grace 0)
    assert list(dict.fromkeys(lines[3:])) == ["stop c", "stop b", "stop a"]
    assert not list((c.shared / "claims").glob("*.json"))  # claims released: the others may start them at once
    assert c.report()["nodes"]["n1"]["state"] == "stopped"


def test_a_new_cltab_is_applied_to_running_groups(make_cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Edited under a running daemon: a changed entry restarts with its new command, a new one starts, an entry
    whose mode became ``off`` stops; the others keep running untouched."""

    def entries() -> dict[str, dict[str, object]]:
        rep = json.loads(c.omha("n1", "status", "--json").stdout)
        inst = rep["groups"]["web"]["instances"].get("n1") or {}
        return dict(inst.get("entries") or {})

    def alive(pid: object) -> bool:
        return isinstance(pid, int) and Path(f"/proc/{pid}").exists()

    old = "web:keep:run:respawn:sleep 3001\nweb:chg:run:respawn:sleep 3002\nweb:gone:run:respawn:sleep 3003\n"
    c = make_cluster(nodes=1, cltab=old, hactl="web run\n")
    c.start()
    c.wait_for("three entries running", lambda: sum(e.get("state") == "running" for e in entries().values()) == 3)
    before = entries()
    new = "web:keep:run:respawn:sleep 3001\nweb:chg:run:respawn:sleep 3012\nweb:gone:run:off:sleep 3003\n"
    (c.shared / "cltab").write_text(new + "web:add:run:respawn:sleep 3004\n")

    def applied() -> bool:
        e = entries()
        return (
            e.get("chg", {}).get("state") == "running"
            and "3012" in str(e["chg"].get("command"))
            and e.get("add", {}).get("state") == "running"
            and not alive(before["gone"]["pid"])
        )

    c.wait_for("the new cltab applied", applied, 20)
    after = entries()
    assert after["keep"]["pid"] == before["keep"]["pid"]  # untouched
    assert not alive(before["chg"]["pid"]) and alive(after["chg"]["pid"])
    assert "cycle failed" not in c.log("n1")
