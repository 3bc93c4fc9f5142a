"""Three real ``omha daemon`` processes on etcd (one member, three members), checked by the safety checker.

Every group's run-level command holds an exclusive lock while it runs (:func:`omha_testing.cluster.guarded`); a moment
at which two nodes ran a group leaves an OVERLAP line and fails the test. Order of events in etcd (a lease expiring,
a claim broken, a new claim, a fence record) is read back from etcd's own history, by revision, so "taken over
only after the lease expired" is checked exactly, not with clocks.

A node is cut off from etcd through :class:`Blackhole`, a TCP forwarder in the test process that each node
reaches its etcd member through. Cut, it forwards nothing and answers nothing while connections stay open:
requests time out as in a network partition (not "connection refused", which a dead etcd gives), and nothing
else on the machine is touched.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omha_membership_etcd.store import EtcdStore
from omha_testing import require_commands
from omha_testing.cluster import guarded
from omha_testing.etcd import ETCD_TIMEOUT, ETCD_TIMING, EtcdCluster, EtcdLocalCluster, Event

from omha_core.cli_cluster import tell
from omha_core.config import validate_config
from omha_core.errors import OmhaError
from omha_core.localcluster import fence_device
from omha_core.plugins import get_plugin_manager

pytestmark = pytest.mark.slow

def first(events: list[Event], what: str, match: Callable[[Event], bool]) -> Event:
    for e in events:
        if match(e):
            return e
    raise AssertionError(f"etcd history has no {what}: {[(e.revision, e.kind, e.key) for e in events][-40:]}")


class Blackhole:
    """A TCP forwarder on 127.0.0.1 to one etcd member, which the test can cut like a network partition.

    While cut it forwards nothing in either direction and answers nothing, but keeps every connection open (and
    accepts new ones), so the node's requests time out the way they do behind a dead link. :meth:`restore`
    drops the connections that lost data while cut and forwards again.
    """

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.cut_now = False
        self.closed = False
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(client)
                if self.cut_now:
                    continue  # hold it open, silent
            try:
                server = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._conns.append(server)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not self.cut_now:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            self._drop(s)

    @staticmethod
    def _drop(s: socket.socket) -> None:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()

    def cut(self) -> None:
        """From now on nothing gets through."""
        self.cut_now = True

    def restore(self) -> None:
        """Close the connections that lost data while cut, and forward again."""
        with self._lock:
            conns, self._conns = self._conns, []
            self.cut_now = False
        for s in conns:
            self._drop(s)

    def close(self) -> None:
        self.closed = True
        self._drop(self.listener)
        self.restore()


# -- fixtures ------------------------------------------------------------------------------------------------------

MakeCluster = Callable[..., EtcdLocalCluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[MakeCluster]:
    """Build etcd-backed local clusters; stops them (before the etcd fixture stops etcd) and checks overlap."""
    require_commands("flock")
    made: list[EtcdLocalCluster] = []

    def make(etcd: EtcdCluster, **kw: Any) -> EtcdLocalCluster:
        c = EtcdLocalCluster(tmp_path, etcd, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def blackholes() -> Iterator[Callable[[int], Blackhole]]:
    made: list[Blackhole] = []

    def make(port: int) -> Blackhole:
        made.append(Blackhole(port))
        return made[-1]

    yield make
    for b in made:
        b.close()


def cltab_for(tmp: Path, groups: list[str]) -> str:
    return "".join(f"{g}:{g}_srv:run:respawn:{guarded(tmp, g)}\n" for g in groups)


def hactl_for(groups: list[str]) -> str:
    return "".join(f"{g} run\n" for g in groups)


def all_once(c: EtcdLocalCluster, groups: list[str]) -> dict[str, list[str]] | None:
    placed = c.placement(groups)
    return placed if all(len(v) == 1 for v in placed.values()) else None


def assert_started_once(c: EtcdLocalCluster, groups: list[str]) -> None:
    for g in groups:
        assert len(c.starts(g)) == 1, f"{g}: {c.safety_log(g)}"


def kill_daemon_and_see_groups_move(c: EtcdLocalCluster, groups: list[str], placed: dict[str, list[str]]) -> str:
    """SIGKILL a daemon holding groups; its groups move elsewhere (once), the others stay. Returns the victim."""
    victim = placed[groups[0]][0]
    held = [g for g in groups if placed[g] == [victim]]
    c.kill(victim, signal.SIGKILL)
    moved = c.wait_for(
        f"{', '.join(held)} running again away from {victim}",
        lambda: (lambda p: p if all(len(p[g]) == 1 and p[g] != [victim] for g in held) else None)(c.placement(groups)),
        30,
    )
    for g in groups:
        if g in held:
            assert c.starts(g) == [victim, moved[g][0]], f"{g}: {c.safety_log(g)}"
        else:
            assert moved[g] == placed[g], f"{g} moved although {placed[g][0]} lives"
            assert len(c.starts(g)) == 1, f"{g}: {c.safety_log(g)}"
    # its lease expires, taking its member key and status with it
    c.wait_for(f"{victim}'s status gone with its lease", lambda: victim not in c.store.statuses(), 10)
    return victim


# -- tests ---------------------------------------------------------------------------------------------------------

GROUPS = ["g0", "g1", "g2", "g3", "g4", "g5"]


def test_one_etcd_member_groups_start_once_and_move_when_a_daemon_is_killed(
    make_cluster: MakeCluster, etcd_server: EtcdCluster, tmp_path: Path
) -> None:
    c = make_cluster(etcd_server)
    c.load(cltab_for(tmp_path, GROUPS), hactl_for(GROUPS))
    c.start()
    placed = c.wait_for("every group running once", lambda: all_once(c, GROUPS), 40)
    assert_started_once(c, GROUPS)
    assert {n for v in placed.values() for n in v} == set(c.names), f"starts piled up: {placed}"
    victim = kill_daemon_and_see_groups_move(c, GROUPS, placed)
    placed = c.placement(GROUPS)
    # restarted on the same host, it takes its member key over at once and steals nothing
    c.start(victim)
    c.wait_for(f"{victim} up again", lambda: c.report()["nodes"].get(victim, {}).get("state") == "up", 20)
    for _ in range(10):  # several cycles in which it could (wrongly) grab work
        assert c.placement(GROUPS) == placed
        time.sleep(0.2)


def test_three_etcd_members_survive_the_leader_and_move_a_killed_daemons_groups(
    make_cluster: MakeCluster, etcd_three: EtcdCluster, tmp_path: Path
) -> None:
    urls = etcd_three.endpoints
    # each daemon talks to another member first, so one of them talks to the raft leader
    # isolate_after 2.5 s (default dead_after / 2 = 1.5 s): a request timed out on the killed leader (1 s) plus the
    # election can keep store calls from returning for longer than 1.5 s on a loaded 2-core machine, and the
    # nodes would then rightly stop their groups; this test is about groups not moving, so give them the time
    c = make_cluster(
        etcd_three,
        endpoints={f"n{i + 1}": urls[i:] + urls[:i] for i in range(3)},
        config={"timing": {"isolate_after": 2.5}},
    )
    c.load(cltab_for(tmp_path, GROUPS), hactl_for(GROUPS))
    c.start()
    placed = c.wait_for("every group running once", lambda: all_once(c, GROUPS), 40)
    leader = etcd_three.leader()
    leader.kill()
    etcd_three.wait_ready()
    # watch for two lease TTLs: no group moves or restarts, no node is ever seen lost
    until = time.monotonic() + 2 * ETCD_TIMING["dead_after"]
    while time.monotonic() < until:
        rep = c.report()
        assert {n: v["state"] for n, v in rep["nodes"].items()} == dict.fromkeys(c.names, "up"), rep["nodes"]
        assert c.placement(GROUPS) == placed
        time.sleep(0.2)
    assert_started_once(c, GROUPS)
    for node in c.names:
        assert "lost while holding" not in c.log(node), c.log(node)
        assert "stopping every local group" not in c.log(node), c.log(node)
    # with two members of three left, a killed daemon's groups still move
    kill_daemon_and_see_groups_move(c, GROUPS, placed)


def cut_off_cluster(
    make_cluster: MakeCluster,
    etcd: EtcdCluster,
    blackholes: Callable[[int], Blackhole],
    tmp: Path,
    devices: list[dict[str, Any]] | None = None,
    fencing: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
) -> tuple[EtcdLocalCluster, dict[str, Blackhole]]:
    """Three daemons running ``web``, each reaching etcd through its own :class:`Blackhole`."""
    names = ["n1", "n2", "n3"]
    proxies = {n: blackholes(etcd.members[0].client_port) for n in names}
    c = make_cluster(
        etcd,
        nodes=names,
        endpoints={n: [p.url] for n, p in proxies.items()},
        devices=devices or [],
        config={"fencing": {"action": "off", **(fencing or {})}, "timing": timing or {}},
    )
    c.load(cltab_for(tmp, ["web"]), hactl_for(["web"]))
    c.start()
    return c, proxies


def cut_holder(c: EtcdLocalCluster, proxies: dict[str, Blackhole]) -> tuple[str, str, list[Event]]:
    """Cut the node running ``web`` off from etcd; wait for ``web`` elsewhere; ``(holder, new, etcd history)``."""
    holder = c.wait_running("web", 40)
    proxies[holder].cut()
    new = c.wait_running("web", 40, exclude=(holder,))
    assert c.starts("web") == [holder, new], c.safety_log("web")
    return holder, new, c.history()


def lease_expiry(events: list[Event], node: str) -> Event:
    return first(events, f"expiry of {node}'s lease", lambda e: e.kind == "DELETE" and e.key == f"members/{node}")


def claim_broken(events: list[Event], holder: str) -> Event:
    return first(events, f"{holder}'s claim broken", lambda e: e.kind == "DELETE" and e.key == "claims/web")


def claim_taken(events: list[Event], node: str) -> Event:
    return first(
        events,
        f"{node}'s claim on web",
        lambda e: e.kind == "PUT" and e.key == "claims/web" and e.doc.get("node") == node,
    )


def test_node_cut_off_from_etcd_stops_its_groups_and_is_taken_over_after_its_lease_expired(
    make_cluster: MakeCluster, etcd_server: EtcdCluster, blackholes: Callable[[int], Blackhole], tmp_path: Path
) -> None:
    # no fence device: a lost node's groups are taken over after [fencing] unfenced_grace, with a warning
    c, proxies = cut_off_cluster(make_cluster, etcd_server, blackholes, tmp_path, fencing={"unfenced_grace": 2.0})
    holder, new, events = cut_holder(c, proxies)
    expired, broken, taken = lease_expiry(events, holder), claim_broken(events, holder), claim_taken(events, new)
    assert expired.revision < broken.revision < taken.revision, (expired, broken, taken)
    # the cut-off daemon stopped its group itself (the safety checker saw no overlap) and still runs
    assert c.procs[holder].poll() is None
    assert "stopping every local group" in c.log(holder), c.log(holder)
    assert c.report()["nodes"][holder]["state"] == "unfenced"
    # reconnected, it joins again and takes nothing back
    proxies[holder].restore()
    c.wait_for(f"{holder} up again", lambda: c.report()["nodes"].get(holder, {}).get("state") == "up", 30)
    for _ in range(8):
        assert c.running("web") == [new]
        time.sleep(0.2)
    assert c.starts("web") == [holder, new]


def counting(tmp: Path, device: dict[str, Any]) -> dict[str, Any]:
    """Wrap a command fence device so that every call is logged to ``tmp/fence-calls``."""
    return dict(device, command=f'echo "$OMHA_NODE $OMHA_ACTION" >> {tmp}/fence-calls; ' + device["command"])


def test_node_cut_off_from_etcd_is_fenced_once_before_its_groups_move(
    make_cluster: MakeCluster, etcd_server: EtcdCluster, blackholes: Callable[[int], Blackhole], tmp_path: Path
) -> None:
    device = counting(tmp_path, fence_device(tmp_path, ["n1", "n2", "n3"]))
    c, proxies = cut_off_cluster(make_cluster, etcd_server, blackholes, tmp_path, devices=[device])
    holder, new, events = cut_holder(c, proxies)
    assert c.procs[holder].wait(10) == -signal.SIGKILL  # powered off by the fence device
    time.sleep(1.0)  # five more cycles of every survivor, in which nobody may fence it again
    events = c.history()
    # exactly one survivor fenced it, exactly once: one fence lock, one fence record, one call of the device
    locks = [e for e in events if e.kind == "PUT" and e.key.startswith(f"fence/lock/{holder}/")]
    records = [e for e in events if e.kind == "PUT" and e.key == f"fence/record/{holder}"]
    assert len(locks) == 1 and len(records) == 1, [(e.key, e.doc) for e in locks + records]
    fencer = locks[0].doc["fencer"]
    assert fencer in {"n1", "n2", "n3"} - {holder}
    assert records[0].doc["by"] == fencer and records[0].doc["ok"], records[0].doc
    assert (tmp_path / "fence-calls").read_text().splitlines() == [f"{holder} off"]
    broken, taken = claim_broken(events, holder), claim_taken(events, new)
    assert records[0].revision < broken.revision < taken.revision, f"{holder}'s claim was broken before it was fenced"


def test_without_grace_or_fencing_a_cut_off_node_is_taken_over_only_after_its_lease_expired(
    make_cluster: MakeCluster, etcd_server: EtcdCluster, blackholes: Callable[[int], Blackhole], tmp_path: Path
) -> None:
    # dead_after 2.2 s: the lease TTL is 3 s (whole seconds), so statuses go stale well before the lease expires
    c, proxies = cut_off_cluster(make_cluster, etcd_server, blackholes, tmp_path, timing={"dead_after": 2.2})
    holder, new, events = cut_holder(c, proxies)
    expired, taken = lease_expiry(events, holder), claim_taken(events, new)
    assert expired.revision < taken.revision, f"{new} claimed web before {holder}'s etcd lease expired"


_round = itertools.count()


def test_concurrent_tells_from_two_shells_are_never_lost(
    make_cluster: MakeCluster, etcd_server: EtcdCluster, tmp_path: Path
) -> None:
    c = make_cluster(etcd_server, nodes=2)
    c.load(cltab_for(tmp_path, ["a0"]), "")
    omha = f"{sys.executable} -m omha_core.cli tell"
    shells = []
    for node, prefix in (("n1", "a"), ("n2", "b")):
        # each shell sets five groups, its five `omha tell` at once, both shells at once
        log = tmp_path / f"{node}.out"
        script = " ".join(
            f'({omha} -c {c.config_path(node)} {prefix}{i} run{i} || echo "FAILED {prefix}{i}") >> {log} 2>&1 &'
            for i in range(5)
        )
        shells.append(
            subprocess.Popen(
                ["sh", "-c", script + " wait"], env={k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
            )
        )
    for sh in shells:
        assert sh.wait(120) == 0
    said = {n: (tmp_path / f"{n}.out").read_text() for n in ("n1", "n2")}
    hactl = c.store.documents("hactl")[0].text.splitlines()
    for prefix, node in (("a", "n1"), ("b", "n2")):
        for i in range(5):
            if f"FAILED {prefix}{i}" in said[node]:
                assert f"{prefix}{i} was not set to run{i}; try again" in said[node], said[node]
                assert f"{prefix}{i} run{i}" not in hactl
            else:
                assert f"{prefix}{i}: wanted level run{i}" in said[node], said[node]
                assert f"{prefix}{i} run{i}" in hactl, f"{prefix}{i} was set but is lost: {hactl}"
    # the same race, forced: many writers, one attempt each; every write lands or is refused, none is lost
    stores = [c.store] + [make_store(c) for _ in range(5)]
    results: dict[str, str] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(len(stores))

    def writer(store: EtcdStore, k: int) -> None:
        barrier.wait()
        for i in range(6):
            group = f"w{k}_{i}"
            try:
                tell(store, group, "run", attempts=1)
                outcome = "landed"
            except OmhaError as exc:
                outcome = str(exc)
            with lock:
                results[group] = outcome

    threads = [threading.Thread(target=writer, args=(s, k)) for k, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores[1:]:
        s.close()
    hactl_lines = c.store.documents("hactl")[0].text.splitlines()
    refused = {g: why for g, why in results.items() if why != "landed"}
    for group, outcome in results.items():
        if outcome == "landed":
            assert f"{group} run" in hactl_lines, f"{group} was set but is lost"
        else:
            assert f"{group} was not set to run" in outcome and "try again" in outcome, outcome
            assert f"{group} run" not in hactl_lines
    assert len(results) == 6 * len(stores)
    assert refused, "no write ever conflicted: the race was not exercised"
    assert len(refused) < len(results)


def make_store(c: EtcdLocalCluster) -> EtcdStore:
    raw = {
        "node": f"writer{next(_round)}",
        "cluster": {"name": c.sections["cluster"]["name"], "store": "etcd", "membership": "etcd"},
        "etcd": {"endpoints": c.etcd.endpoints, "timeout": ETCD_TIMEOUT},
    }
    store = EtcdStore(validate_config(raw, "test", get_plugin_manager()))
    store.open()
    return store
