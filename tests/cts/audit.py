"""The CTS audit: after every scenario, are the groups where they should be, nothing doubled, nothing left behind?

Pacemaker's Cluster Test Suite follows every test with an audit of the whole cluster; this is omha's. It judges
from three independent sources and requires them to agree:

1. what the daemons publish (``omha status``'s report): every wanted group at its level on exactly one live node;
2. what the group processes themselves logged: each run-level command holds its group's kernel lock
   (:func:`cts_guarded`) and logs ``start NODE PID TIME``, or ``OVERLAP`` when another instance held it;
3. /proc: every process an omha init started carries ``OMHA_CLUSTER``, ``OMHA_NODE`` and ``OMHA_GROUP`` in its
   environment; each must be a descendant of its node's live daemon, of a group published on that node, and a
   node whose daemon is down must have none left (nor its guard).

Then the fence records: exactly the nodes the scenario expects were fenced (since it began), by a live node, and
a group held by a fenced node started elsewhere only after the fence record's time (takeover after fencing).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from omha_testing.cluster import Cluster, guarded

from omha_core.init.cgroups import cgroup2_parent


def cts_guarded(cluster_dir: Path, group: str, command: str = "sleep 100000") -> str:
    """:func:`omha_testing.cluster.guarded`, the start lines also carrying the wall-clock time of the start
    (``start NODE PID EPOCH``), so that the audit can order a takeover after the fence record."""
    return guarded(cluster_dir, group, command, stamp=True)


@dataclass
class Proc:
    """One process of the cluster's inits, from /proc."""

    pid: int
    node: str
    group: str
    ancestors: list[int] = field(default_factory=list)


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1])


def cluster_processes(cluster: str) -> list[Proc]:
    """Every live process whose environment says it was started by an init of ``cluster``."""
    found = []
    needle = f"OMHA_CLUSTER={cluster}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                raw = fh.read().split(b"\0")
        except OSError:
            continue
        if needle not in raw:
            continue
        env = dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)
        pid = int(name)
        chain: list[int] = []
        p = _ppid(pid)
        if p is None:
            continue  # a zombie: nothing runs
        while p and p != 1 and len(chain) < 64:
            chain.append(p)
            p = _ppid(p)
        found.append(Proc(pid, env.get("OMHA_NODE", "?"), env.get("OMHA_GROUP", "?"), chain))
    return found


def guard_pids(daemon_pid: int) -> set[int]:
    """The guard processes the daemon ``daemon_pid`` started (children running ``guard.py``)."""
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit() or _ppid(int(name)) != daemon_pid:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if b"guard.py" in fh.read():
                    out.add(int(name))
        except OSError:
            continue
    return out


def remove_tree(path: str) -> None:
    """Remove a cgroup directory and those below it, deepest first, killing what still runs in them."""
    if not os.path.isdir(path):
        return
    for root, _, _ in os.walk(path, topdown=False):
        try:
            with open(os.path.join(root, "cgroup.kill"), "w") as fh:
                fh.write("1")
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.rmdir(root)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def alive(pid: int) -> bool:
    return _ppid(pid) is not None


@dataclass
class StartLine:
    node: str
    pid: int
    time: float


def starts(c: Cluster, group: str, since: float = 0.0) -> list[StartLine]:
    """The logged starts of ``group``'s run-level command at or after ``since`` (epoch seconds), oldest first."""
    out = []
    for line in c.safety_log(group):
        parts = line.split()
        if parts[0] == "start" and len(parts) >= 4 and float(parts[3]) >= since:
            out.append(StartLine(parts[1], int(parts[2]), float(parts[3])))
    return out


class CtsCluster(Cluster):
    """A local cluster of guarded groups, with what the audit needs to know about it."""

    def __init__(self, tmp: Path, groups: list[str], **kw: Any) -> None:
        self.groups = list(groups)
        self.cltab_text = "".join(f"{g}:{g}_srv:run:respawn:{cts_guarded(tmp, g)}\n" for g in groups)
        self.hactl_text = "".join(f"{g} run\n" for g in groups)
        super().__init__(tmp, cltab=self.cltab_text, hactl=self.hactl_text, **kw)
        #: every guard pid seen per node, so that the audit can check that a down node left none running
        self.guards: dict[str, set[int]] = {n: set() for n in self.names}
        #: per node, the cgroup its daemon runs in (as systemd gives omha.service one), or none without cgroup v2
        self.cgroups: dict[str, str] = {}
        parent, _ = cgroup2_parent()
        if parent is not None:
            tag = f"cts-{os.getpid()}-{uuid.uuid4().hex[:6]}"
            for n in self.names:
                self.cgroups[n] = os.path.join(parent, f"{tag}-{n}")
                # enter it, then run the rest of the command line (the daemon, perhaps in a network namespace)
                enter = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroups[n]]
                self.wrap[n] = [*enter, *self.wrap.get(n, [])]

    @property
    def cluster_name(self) -> str:
        return str(self.sections["cluster"]["name"])

    def live(self) -> list[str]:
        """Nodes whose daemon process runs."""
        return [n for n in self.names if n in self.procs and self.procs[n].poll() is None]

    def start(self, *nodes: str) -> None:
        """Start the daemons of ``nodes`` (default all), each in its own cgroup: the sweep of a daemon starting
        (which kills what dead inits left running in the cgroups beside its own) then reaches only the leftovers of
        this node's earlier daemons, never those of another node or of another test running on this machine."""
        for n in nodes or self.names:
            if n in self.cgroups:
                os.makedirs(self.cgroups[n], exist_ok=True)
        super().start(*nodes)
        for n in nodes or self.names:
            self.wait_for(f"{n}'s guard", partial(self._note_guards, n), 30)

    def _note_guards(self, node: str) -> bool:
        pids = guard_pids(self.procs[node].pid)
        self.guards[node] |= pids
        return bool(pids) or self.procs[node].poll() is not None  # a daemon that died never starts its guard

    def close(self) -> None:
        try:
            super().close()
        finally:
            for path in self.cgroups.values():
                remove_tree(path)

    def terminate(self, *nodes: str) -> None:
        """SIGTERM the daemons of ``nodes`` at once (each stops its groups) and wait for them to exit."""
        for n in nodes:
            self.procs[n].send_signal(signal.SIGTERM)
        for n in nodes:
            self.procs[n].wait(60)

    def wait_up(self, *nodes: str) -> None:
        """Until every one of ``nodes`` is ``up`` in the published report."""
        self.wait_for(
            f"{', '.join(nodes)} up",
            lambda: all(self.report()["nodes"].get(n, {}).get("state") == "up" for n in nodes),
            30,
        )

    def where(self) -> dict[str, list[str]]:
        """Per group, the live nodes that publish it at its wanted level, settled."""
        rep = self.report()
        up = {n for n, v in rep["nodes"].items() if v["state"] == "up"}
        out = {}
        for g in self.groups:
            info = rep["groups"].get(g) or {"instances": {}, "want": None}
            out[g] = sorted(
                n
                for n, i in info["instances"].items()
                if n in up and i["level"] == info["want"] and i["state"] in ("DONE", "PASSED")
            )
        return out


def _problems(c: CtsCluster, running: bool, away: set[str]) -> tuple[list[str], dict[str, str]]:
    """What is wrong with the cluster right now (empty when the audit passes), and the placement."""
    problems: list[str] = []
    live = set(c.live()) - away
    rep = c.report()
    up = {n for n, v in rep["nodes"].items() if v["state"] == "up"}
    procs = cluster_processes(c.cluster_name)
    placed: dict[str, str] = {}
    for g in c.groups:
        info = rep["groups"].get(g) or {"instances": {}, "want": None}
        active = {n: i for n, i in info["instances"].items() if i["level"] not in (None, "stop") and n in up}
        settled = ("DONE", "PASSED")
        at_level = sorted(n for n, i in active.items() if i["level"] == info["want"] and i["state"] in settled)
        mine = [p for p in procs if p.group == g]
        if not running:
            if active:
                problems.append(f"{g}: published active on {sorted(active)} although nothing may run")
            if mine:
                problems.append(f"{g}: processes {[(p.pid, p.node) for p in mine]} run although nothing may run")
            continue
        if len(at_level) != 1 or len(active) != 1:
            problems.append(f"{g}: published at its level on {at_level}, active on {sorted(active)}")
            continue
        node = at_level[0]
        if node not in live:
            problems.append(f"{g}: published on {node}, whose daemon is down or which must run nothing")
            continue
        log = starts(c, g)
        if not log or log[-1].node != node:
            problems.append(f"{g}: published on {node}, last start logged {log[-1:] or 'nowhere'}")
            continue
        if {p.node for p in mine} != {node}:
            problems.append(f"{g}: published on {node}, processes on {sorted({p.node for p in mine})}")
            continue
        daemon = c.procs[node].pid
        strays = [p.pid for p in mine if daemon not in p.ancestors]
        if strays:
            problems.append(f"{g}: processes {strays} on {node} do not descend from its daemon {daemon}")
            continue
        entry_pids = {e.get("pid") for e in active[node].get("entries", {}).values()}
        logged = next((p for p in mine if p.pid == log[-1].pid), None)
        if logged is None or not entry_pids & {logged.pid, *logged.ancestors}:
            problems.append(f"{g}: the logged instance {log[-1].pid} is not the published one {entry_pids}")
            continue
        placed[g] = node
    for p in procs:
        if p.group not in c.groups:
            problems.append(f"process {p.pid} of {p.node} belongs to no known group ({p.group})")
        if p.node in away:
            problems.append(f"process {p.pid} ({p.group}) still runs on {p.node}, which must run nothing")
        elif p.node not in live:
            problems.append(f"process {p.pid} ({p.group}) left behind by {p.node}, whose daemon is down")
    for n in set(c.names) - set(c.live()):
        left = [pid for pid in c.guards.get(n, ()) if alive(pid)]
        if left:
            problems.append(f"{n}'s guard {left} still runs although its daemon is down")
    return problems, placed


def audit(
    c: CtsCluster,
    since: float,
    fenced: Iterable[str] | None = (),
    running: bool = True,
    before: Mapping[str, str] | None = None,
    away: Iterable[str] = (),
    timeout: float = 40.0,
) -> dict[str, str]:
    """Wait (up to ``timeout``) for the cluster to settle into a state that passes the audit; fail naming what
    is wrong. Returns where each group runs.

    :param since: when the scenario began (``time.time()``): fence records and starts after it are its own.
    :param fenced: the nodes the scenario must have fenced (exactly those); None to skip the fence check.
    :param running: True when every wanted group must run once; False when nothing may run anywhere.
    :param before: where each group ran when the scenario began; a group of a fenced node must have started
        elsewhere only after that node's fence record.
    :param away: nodes whose daemon may run but which must hold no group (cut off from the others, frozen).
    """
    deadline = time.monotonic() + timeout
    expect = set(fenced or ())
    while True:
        problems, placed = _problems(c, running, set(away))
        if fenced is not None:
            records = {n: c.fence_record(n) for n in c.names}
            new = {n for n, r in records.items() if float(r.get("time", 0)) >= since}
            assert new <= expect, f"fenced {sorted(new)}, expected {sorted(expect)}: { {n: records[n] for n in new} }"
            problems += [f"{n} not fenced (yet)" for n in sorted(expect - new)]
        if not problems:
            break
        if time.monotonic() > deadline:
            raise AssertionError("audit failed:\n  " + "\n  ".join(problems) + "\n" + c.diagnostics())
        time.sleep(0.2)
    c.assert_no_overlap()
    if fenced is not None:
        for n in expect:
            rec = records[n]
            assert rec["ok"] and rec["by"] != n, rec
            for g, holder in (before or {}).items():
                if holder != n:
                    continue
                later = [s for s in starts(c, g, since) if s.node != n]
                assert later and later[0].time > float(rec["time"]), (
                    f"{g} started on {later[0].node if later else '?'} before {n} was fenced: "
                    f"{c.safety_log(g)}, record {rec}"
                )
    return placed


def quiet(c: CtsCluster, placed: Mapping[str, str], cycles: int = 8, step: float = 0.2) -> None:
    """For ``cycles`` more heartbeats, nothing moves and nothing starts again (a settled cluster stays put)."""
    count = {g: len(starts(c, g)) for g in c.groups}
    for _ in range(cycles):
        time.sleep(step)
        assert c.where() == {g: [n] for g, n in placed.items()} | {g: [] for g in c.groups if g not in placed}, (
            c.diagnostics()
        )
    assert {g: len(starts(c, g)) for g in c.groups} == count, "a group started again in a settled cluster"


def kill_process(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
