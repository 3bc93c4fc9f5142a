"""Fence-before-takeover with real daemons and the ``command`` device that really powers a local node off.

The harshest case is a *frozen* node (SIGSTOP): its daemon stops heartbeating but its processes keep running.
Taking its groups over without fencing would run them twice, which the safety checker would catch.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

from omha_core.localcluster import fence_device, kill_strays
from tests.core.test_fence_devices import marked, running

pytestmark = pytest.mark.slow
PASSWORD = "s3cr3t-Pa55word-do-not-leak"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Any]:
    require_commands("flock")
    made: list[Cluster] = []

    def make(devices: list[dict[str, Any]], fencing: dict[str, Any] | None = None, nodes: int = 3) -> Cluster:
        cltab = web_cltab(tmp_path)
        c = Cluster(tmp_path, nodes, cltab=cltab, hactl="web run\n", devices=devices, config={"fencing": fencing or {}})
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def counting(tmp: Path, device: dict[str, Any]) -> dict[str, Any]:
    """Wrap a command device so that every call is logged (to count fence calls)."""
    return dict(device, command=f'echo "$OMHA_NODE $OMHA_ACTION" >> {tmp}/fence-calls; ' + device["command"])


def fence_calls(tmp: Path) -> list[str]:
    path = tmp / "fence-calls"
    return path.read_text().splitlines() if path.exists() else []


def record(c: Cluster, node: str) -> dict[str, Any]:
    path = c.shared / "fence" / f"{node}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def heartbeat(c: Cluster, node: str) -> Any:
    """The sequence number of the node's last published status."""
    return json.loads((c.shared / "nodes" / node / "status.json").read_text())["seq"]


def test_frozen_node_is_fenced_exactly_once_before_takeover(cluster: Any, tmp_path: Path) -> None:
    c = cluster([counting(tmp_path, fence_device(tmp_path, ["n1", "n2", "n3"]))], {"action": "off"})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGSTOP)  # frozen: its server keeps running, holding the safety lock
    new = c.wait_running("web", 30, exclude=(victim,))
    rec = record(c, victim)
    assert rec["ok"] and rec["device"] == "localkill" and rec["by"] in set(c.names) - {victim}
    assert fence_calls(tmp_path) == [f"{victim} off"]  # exactly one survivor fenced, once
    assert c.procs[victim].wait(10) == -signal.SIGKILL  # the "power off" really happened
    starts = [ln.split()[1] for ln in c.safety_log("web") if ln.startswith("start")]
    assert starts == [victim, new]
    time.sleep(1.0)
    assert fence_calls(tmp_path) == [f"{victim} off"]
    assert c.report()["nodes"][victim]["state"] == "fenced"
    # powered on again, it rejoins with nothing running until the decision loop gives it work
    c.start(victim)
    c.wait_for(f"{victim} up", lambda: c.report()["nodes"][victim]["state"] == "up")
    time.sleep(1.5)
    assert c.running("web") == [new]
    assert c.report()["groups"]["web"]["instances"].keys() == {new}


def test_minority_partition_fences_nobody(cluster: Any, tmp_path: Path) -> None:
    c = cluster([counting(tmp_path, fence_device(tmp_path, ["n1", "n2", "n3"]))], {"action": "off"})
    c.start()
    holder = c.wait_running("web")
    others = [n for n in c.names if n != holder]
    survivor = others[0]
    # Two of three frozen: the survivor is a minority. The holder must not look lost before the other frozen
    # node does (the survivor would then still have a quorum and rightly fence it), so freeze the other node
    # first and the holder only after it has published one more heartbeat.
    c.kill(others[1], signal.SIGSTOP)
    seq = heartbeat(c, holder)
    c.wait_for("one more heartbeat from the holder", lambda: heartbeat(c, holder) != seq, 5)
    c.kill(holder, signal.SIGSTOP)
    c.wait_for(
        "the survivor to see both lost",
        lambda: (
            all(v["state"] != "up" for n, v in c.report()["nodes"].items() if n != survivor)
            and c.report()["observer"] == survivor
        ),
    )
    time.sleep(2.0)
    assert fence_calls(tmp_path) == []  # no quorum: nobody is fenced...
    assert c.running("web") == []  # ...and nothing is taken over
    assert c.report()["nodes"][holder]["fencing"]["state"] == "waiting"


def test_failing_device_keeps_group_down_and_says_why(cluster: Any, tmp_path: Path) -> None:
    broken = {
        "name": "deadpdu",
        "kind": "command",
        "command": "echo PDU unreachable >&2; exit 1",
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    c = cluster([broken], {"retry_max": 1.0})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)

    def says_why() -> bool:
        rep = c.report()
        node = rep["nodes"][victim]
        return node["state"] == "fence-failed" and "fencing" in (rep["groups"]["web"]["why"] or "")

    c.wait_for("fence failure in status", says_why, 30)
    time.sleep(2.0)
    assert c.running("web") == []  # still down: no takeover without a successful fence
    out = c.omha("n1" if victim != "n1" else "n2", "status").stdout
    assert "FENCE-FAILED" in out and "PDU unreachable" in out


def test_second_level_device_used_when_first_fails(cluster: Any, tmp_path: Path) -> None:
    first = {
        "name": "level1",
        "kind": "command",
        "command": f"echo level1 >> {tmp_path}/levels; exit 1",
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    second = counting(tmp_path, fence_device(tmp_path, ["n1", "n2", "n3"], name="level2"))
    c = cluster([first, second], {"action": "off"})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)
    c.wait_running("web", 30, exclude=(victim,))
    assert record(c, victim)["device"] == "level2"
    assert (tmp_path / "levels").read_text().splitlines() == ["level1"]
    assert record(c, victim)["errors"][0].startswith(f"level1 (command): level1: off {victim[1:]}: exit 1")


def test_unfenced_node_taken_over_after_grace_with_warning(cluster: Any, tmp_path: Path) -> None:
    c = cluster([], {"unfenced_grace": 1.0})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)
    c.wait_running("web", 30, exclude=(victim,))
    rep = c.report()
    assert rep["nodes"][victim]["state"] == "unfenced"
    assert "taken over unfenced" in json.dumps(rep["nodes"][victim]["fencing"])
    assert any("UNFENCED" in c.log(n) for n in c.names if n != victim)


def test_takeover_after_every_device_failed_when_configured_and_status_says_so(cluster: Any, tmp_path: Path) -> None:
    broken = {
        "name": "deadpdu",
        "kind": "command",
        "command": "echo PDU unreachable >&2; exit 1",
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    c = cluster([broken], {"on_fence_failure": "takeover"})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)
    new = c.wait_running("web", 30, exclude=(victim,))
    assert record(c, victim)["result"] == "failed"  # taken over only after every device failed...
    fencing = c.report()["nodes"][victim]["fencing"]
    assert fencing["state"] == "fence-failed" and fencing["takeover"] is True
    out = c.omha(new, "status").stdout  # ...and the operator is told so
    assert "taken over anyway (on_fence_failure = takeover)" in out and "PDU unreachable" in out


def test_password_never_reaches_logs_status_or_errors(cluster: Any, tmp_path: Path) -> None:
    # a (tiny, real) fence agent that prints back everything it was sent, the password in its args included
    agent_path = tmp_path / "fence_echo"
    agent_path.write_text("#!/bin/sh\necho \"login refused; sent: $(tr '\\n' ' ')\" >&2\nexit 1\n")
    agent_path.chmod(0o755)
    agent = {
        "name": "pdu",
        "kind": "fence_agent",
        "agent": str(agent_path),
        "args": {"ip": "127.0.0.1", "passwd": PASSWORD},
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    # the failing command's message would carry the password if anything echoed it
    echo = {
        "name": "echoer",
        "kind": "command",
        "command": f"echo login with {PASSWORD} refused >&2; exit 1",
        "password": PASSWORD,
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    c = cluster([agent, echo], {"retry_max": 1.0})
    c.start()
    victim = c.wait_running("web")
    c.kill(victim, signal.SIGKILL)
    c.wait_for("fence failure", lambda: c.report()["nodes"][victim]["state"] == "fence-failed", 30)
    manual = c.omha("n1", "fence", victim, "--action", "off", check=False)
    texts = [
        manual.stdout + manual.stderr,
        c.omha("n1", "status").stdout,
        c.omha("n1", "status", "--json").stdout,
        *(c.log(n) for n in c.names),
        *(p.read_text() for p in c.shared.rglob("*.json")),
    ]
    assert "login with *** refused" in manual.stderr and "passwd=***" in manual.stderr  # the messages got through...
    assert "passwd=***" in json.dumps(record(c, victim))
    assert not [t for t in texts if PASSWORD in t]  # ...without the password


def test_clean_shutdown_is_not_fenced(cluster: Any, tmp_path: Path) -> None:
    """A node that stops cleanly (omha shutdown) stopped everything itself: its groups move without fencing."""
    c = cluster([counting(tmp_path, fence_device(tmp_path, ["n1", "n2", "n3"]))], {"action": "off"})
    c.start()
    holder = c.wait_running("web")
    c.omha(holder, "shutdown", "--wait")
    c.wait_running("web", 30, exclude=(holder,))
    c.wait_for(f"{holder} reported stopped", lambda: c.report()["nodes"][holder]["state"] == "stopped")
    time.sleep(1.0)
    assert fence_calls(tmp_path) == []
    assert c.fence_record(holder) == {}


def test_a_fence_command_dies_with_its_daemon(cluster: Any, tmp_path: Path) -> None:
    """The fencer is SIGKILLed while its fence command runs: the command (and its child) must not run on
    unsupervised, to switch the node beside the next fencer's call."""
    marker = f"omha-fence-marker-{tmp_path.name}"
    pid_file = tmp_path / "fence-sleep.pid"
    hang = {
        "name": "hang",
        "kind": "command",
        "command": f": {marker}; sleep 300 & echo $! > {pid_file}; wait",
        "timeout": 120,
        "nodes": {"n1": "1", "n2": "2", "n3": "3"},
    }
    c = cluster([hang], {"action": "off"})
    try:
        c.start()
        victim = c.wait_running("web")
        c.kill(victim, signal.SIGSTOP)
        child = int(c.wait_for("the fence command", lambda: pid_file.exists() and pid_file.read_text().strip(), 30))
        daemons = {p.pid: n for n, p in c.procs.items()}
        fencer = c.wait_for(
            "the fencing daemon", lambda: next((daemons[a] for a in ancestors(child) if a in daemons), None), 5
        )
        assert fencer != victim and marked(marker)
        c.kill(fencer, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (running(child) or marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(child), "the fence command's child outlived the daemon"
        assert marked(marker) == [], "the fence command outlived the daemon"
    finally:
        kill_strays(marker)
        if pid_file.exists() and pid_file.read_text().strip() and running(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def ancestors(pid: int) -> list[int]:
    """``pid``'s parent, grandparent, ... up to init."""
    out = []
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        out.append(pid)
    return out
