"""Benchmark: VIP failover of omha against keepalived, side by side on one machine, trials interleaved.

Three segments, each like a small LAN: two node namespaces and a client namespace holding the bridge
(documentation prefixes only, nothing leaves the namespaces)::

    ns <tag>-a: eth0 02:00:00:00:00:0a ---+
                                          br0 in ns <tag>-c (the client, 192.0.2.1)
    ns <tag>-b: eth0 02:00:00:00:00:0b ---+

The same VIP 192.0.2.10/24 is served on each segment by one system at its defaults:

- ``keepalived``: Debian's keepalived 2.2 in each node namespace, one ``vrrp_instance`` (advert_int 1, equal
  priorities, no other option);
- ``omha+test``: ``omha daemon`` in each node namespace (seeing the cgroup2 hierarchy, as on a real node:
  ``omha_testing.netns.as_node``) at the default timings (heartbeat 0.5 s, dead_after 2 s), quorum policy
  ``ignore`` (two nodes), a ``command`` fence device that really powers the node off (link down, SIGKILL of
  every process in its namespace) with a ``status_command`` read-back, and the group::

      web:ipt:test:test:@vip 192.0.2.10/24
      web:ip:run:respawn:@vip 192.0.2.10/24

- ``omha``: the same without the ``test`` entry.
- ``omha+test-unfenced``, ``omha-unfenced`` (only when asked for with ``--rows``): the same without a fence
  device, taken over at once (``unfenced_grace`` 0): the fence's own cost is the difference.
- ``omha+test-spawn``, ``omha-spawn`` (only when asked for): the same with ``[init] agent_host = "off"``, each
  agent action a Python process of its own instead of a fork of the agent host: the host's gain is the
  difference.

Each trial takes the node that holds the VIP and either cuts its power (``power``: its link goes down and every
process in its namespace gets SIGKILL at once; its addresses are flushed before it comes back, as after a real
reboot) or SIGKILLs only its daemon (``kill``: keepalived's processes, or the omha daemon whose guard then
releases the address). A pinger in the client namespace sends an ICMP echo request to the VIP every 3 ms and
reads the bridge through a packet socket, so it tells replies apart by their Ethernet source address; the clock
runs from the power cut (or the signal) to the first echo reply from the other node's MAC. CLOCK_MONOTONIC is
shared by all namespaces. The node is then restarted, and the next trial (of the next row) starts only when its
system is whole again. Rows are interleaved trial by trial, so they share the machine's load alike.

Usage: ``sudo .venv/bin/python bench/bench_vs_keepalived.py [--trials 20] [--rows keepalived,omha+test,omha]
[--stall 600]`` (installs keepalived and stress-ng with ``scripts/install-system-packages`` when missing). The goal
(omha+test at most half of keepalived's time) counts only with no false failover at the same defaults under load,
so the trials are followed by ``bench_stall.py`` for ``--stall`` seconds (5 daemons, ``stress-ng`` on both cores
and the disk); ``--stall 0`` skips it, and the exit status is bench_stall's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from omha_testing.netns import as_node  # noqa: E402

from bench import _pinger  # noqa: E402
from bench.bench_stall import parse_timing  # noqa: E402
from omha_core.localcluster import LocalCluster  # noqa: E402

VIP = "192.0.2.10"
PING_EVERY = 0.003
DEV = "eth0"
MACS = {"n1": "02:00:00:00:00:0a", "n2": "02:00:00:00:00:0b"}
OWN = {"n1": "192.0.2.2", "n2": "192.0.2.3"}
ROWS = ("keepalived", "omha+test", "omha")
#: also accepted by --rows: the same omha systems without a fence device (taken over after unfenced_grace, 0 s)
UNFENCED_ROWS = ("omha+test-unfenced", "omha-unfenced")
#: also accepted by --rows: the same omha systems with every agent action started as a process of its own
SPAWN_ROWS = ("omha+test-spawn", "omha-spawn")
HOW = ("power", "kill")


def wait(what: str, predicate: Callable[[], object], timeout: float) -> None:
    """Poll ``predicate`` until true; stop the benchmark naming ``what`` after ``timeout`` seconds."""
    _pinger.wait("bench_vs_keepalived", what, predicate, timeout)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its stderr when it fails and ``check`` is set."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


# -- one segment --------------------------------------------------------------------------------------------


class Segment:
    """Two node namespaces (``n1``, ``n2``) and a client namespace with the bridge; removed by :meth:`close`."""

    def __init__(self) -> None:
        tag = f"omha-vk-{uuid.uuid4().hex[:8]}"
        self.client = f"{tag}-c"
        self.ns = {"n1": f"{tag}-a", "n2": f"{tag}-b"}
        self._made: list[str] = []

    def open(self) -> Segment:
        for ns in (self.client, *self.ns.values()):
            ip("netns", "add", ns)
            self._made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        c = self.client
        ip("-n", c, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ip("-n", c, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", c, "link", "set", "br0", "up")
        ip("-n", c, "addr", "add", "192.0.2.1/24", "dev", "br0")
        for node, ns in self.ns.items():
            port = f"port-{node}"
            ip("-n", c, "link", "add", port, "type", "veth", "peer", "name", DEV, "netns", ns)
            ip("-n", c, "link", "set", port, "master", "br0", "up")
            ip("-n", ns, "link", "set", DEV, "address", MACS[node], "up")
            ip("-n", ns, "addr", "add", f"{OWN[node]}/24", "dev", DEV)
        return self

    def close(self) -> None:
        for ns in self.ns.values():
            kill_namespace(ns)
        for ns in reversed(self._made):
            ip("netns", "del", ns, check=False)

    def holds(self, node: str) -> bool:
        """True when ``node``'s interface has the VIP."""
        out = ip("-n", self.ns[node], "-j", "-4", "addr", "show", "dev", DEV).stdout
        return any(a.get("local") == VIP for link in json.loads(out) for a in link.get("addr_info", []))

    def holder(self) -> str | None:
        """The one node holding the VIP, None when none or both do."""
        held = [n for n in self.ns if self.holds(n)]
        return held[0] if len(held) == 1 else None

    def power_off(self, node: str) -> None:
        """Cut ``node``'s power: its link goes down and every process in its namespace gets SIGKILL."""
        ip("-n", self.ns[node], "link", "set", DEV, "down")
        kill_namespace(self.ns[node])

    def power_on(self, node: str) -> None:
        """Bring ``node`` back as a rebooted machine would come: no VIP on its interface, link up."""
        ip("-n", self.ns[node], "addr", "del", f"{VIP}/24", "dev", DEV, check=False)
        ip("-n", self.ns[node], "link", "set", DEV, "up")

    def pinger(self, old: str, new: str, timeout: float) -> subprocess.Popen[str]:
        cmd = [
            *("ip", "netns", "exec", self.client, sys.executable, __file__, "--pinger", VIP),
            *("--old", MACS[old], "--new", MACS[new], "--timeout", str(timeout)),
        ]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def namespace_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30).stdout
    return [int(p) for p in out.split()]


def kill_all(pids: list[int]) -> None:
    """Kill ``pids`` at once: SIGSTOP first, so that none acts on the death of another (keepalived's VRRP
    process gets SIGTERM when its parent dies, and would send a priority-0 advert and hand over at once)."""
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def kill_namespace(ns: str) -> None:
    """SIGKILL every process in ``ns`` until none is left."""
    for _ in range(200):
        pids = namespace_pids(ns)
        if not pids:
            return
        kill_all(pids)
        time.sleep(0.01)


#: the omha fence device: a shell command that cuts the node's power like the bench does, and reads it back
FENCE_OFF = (
    'case "$OMHA_ACTION" in off|reboot) ip -n "$OMHA_TARGET" link set ' + DEV + " down; "
    'for i in $(seq 100); do p=$(ip netns pids "$OMHA_TARGET"); [ -z "$p" ] && break; kill -9 $p; sleep 0.01; done;; '
    "esac"
)
FENCE_STATUS = 'if [ -z "$(ip netns pids "$OMHA_TARGET")" ]; then echo off; else echo on; fi'


# -- the systems --------------------------------------------------------------------------------------------


@dataclass
class System:
    """One system serving the VIP on its own segment."""

    name: str
    tmp: Path
    seg: Segment = field(default_factory=lambda: Segment().open())

    def start(self, node: str) -> None:
        raise NotImplementedError

    def ready(self) -> str | None:
        """The holder when the system is whole (both nodes up, one holding the VIP), else None."""
        raise NotImplementedError

    def kill_daemon(self, node: str) -> None:
        raise NotImplementedError

    def diagnostics(self) -> str:
        """What to print when a trial fails."""
        return ""

    def after(self, node: str) -> None:
        """Tidy ``node`` after a trial, before it is started again."""
        kill_namespace(self.seg.ns[node])
        self.seg.power_on(node)

    def close(self) -> None:
        self.seg.close()


class Keepalived(System):
    """keepalived in each node namespace, defaults but for the files it needs to be told apart."""

    def __init__(self, name: str, tmp: Path) -> None:
        super().__init__(name, tmp)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}

    def conf(self, node: str) -> Path:
        path = self.tmp / f"keepalived-{node}.conf"
        path.write_text(
            "global_defs {\n"
            f"  router_id {node}\n"
            "}\n"
            "vrrp_instance VI_1 {\n"
            f"  interface {DEV}\n"
            "  virtual_router_id 51\n"
            "  priority 100\n"
            "  advert_int 1\n"
            f"  virtual_ipaddress {{\n    {VIP}/24\n  }}\n"
            "}\n"
        )
        return path

    def start(self, node: str) -> None:
        pid = self.tmp / f"keepalived-{node}"
        for stale in (f"{pid}.pid", f"{pid}-vrrp.pid", f"{pid}-chk.pid"):  # left by a SIGKILLed keepalived
            Path(stale).unlink(missing_ok=True)
        cmd = [
            *(
                "ip",
                "netns",
                "exec",
                self.seg.ns[node],
                "keepalived",
                "--dont-fork",
                "--vrrp",
                "--log-console",
                "--log-detail",
            ),
            *("-f", str(self.conf(node)), "-p", f"{pid}.pid", "-r", f"{pid}-vrrp.pid", "-c", f"{pid}-chk.pid"),
        ]
        log = open(self.tmp / f"keepalived-{node}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[node] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.started[node] = time.monotonic()

    def ready(self) -> str | None:
        # both running (parent and VRRP child), and a restarted one a BACKUP for longer than its
        # master_down_interval (3 adverts and the skew: about 3.6 s), so that it heard the MASTER
        if any(p.poll() is not None for p in self.procs.values()):
            raise SystemExit(f"bench_vs_keepalived: keepalived exited\n{self.diagnostics()}")
        if any(len(namespace_pids(ns)) < 2 for ns in self.seg.ns.values()):
            return None
        if any(time.monotonic() - t < 5.0 for t in self.started.values()):
            return None
        return self.seg.holder()

    def diagnostics(self) -> str:
        out = []
        for node in self.seg.ns:
            log = self.tmp / f"keepalived-{node}.log"
            tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
            out.append(f"--- keepalived {node}\n" + "\n".join(tail))
        return "\n".join(out)

    def kill_daemon(self, node: str) -> None:
        kill_namespace(self.seg.ns[node])  # keepalived's processes are all there is in the namespace

    def after(self, node: str) -> None:
        super().after(node)
        self.procs[node].wait()


class Omha(System):
    """Two ``omha daemon`` processes at the default timings (or ``--timing``'s), each in its node namespace, with
    a fence device."""

    def __init__(
        self,
        name: str,
        tmp: Path,
        test_entry: bool,
        fenced: bool = True,
        timing: dict[str, float] | None = None,
        agent_host: bool = True,
    ) -> None:
        super().__init__(name, tmp)
        lines = [f"web:ipt:test:test:@vip {VIP}/24\n"] if test_entry else []
        nodes = list(self.seg.ns)
        self.cluster = LocalCluster(
            tmp,
            nodes,
            cltab="".join(lines) + f"web:ip:run:respawn:@vip {VIP}/24\n",
            hactl="web run\n",
            config={"cluster": {"name": f"bench-vk-{uuid.uuid4().hex[:8]}"}, "quorum": {"policy": "ignore"}},
            devices=[
                {
                    "name": "power",
                    "kind": "command",
                    "command": FENCE_OFF,
                    "status_command": FENCE_STATUS,
                    "nodes": {n: ns for n, ns in self.seg.ns.items()},
                }
            ]
            if fenced
            else [],
            wrap={n: as_node(ns) for n, ns in self.seg.ns.items()},
        )
        # omha's defaults (or what --timing says), not LocalCluster's fast test timings
        self.cluster.sections["timing"] = dict(timing or {})
        self.cluster.sections["init"] = {} if agent_host else {"agent_host": "off"}
        for node in nodes:
            self.cluster.write_config(node)

    def start(self, node: str) -> None:
        self.cluster.start(node)

    def ready(self) -> str | None:
        rep = self.cluster.report()
        if any(rep["nodes"].get(n, {}).get("state") != "up" for n in self.seg.ns):
            return None
        running = self.cluster.running("web")
        if len(running) != 1 or self.seg.holder() != running[0]:
            return None
        return running[0]

    def kill_daemon(self, node: str) -> None:
        self.cluster.kill(node, signal.SIGKILL)

    def diagnostics(self) -> str:
        return self.cluster.diagnostics()

    def after(self, node: str) -> None:
        super().after(node)
        proc = self.cluster.procs[node]
        proc.wait()

    def close(self) -> None:
        self.cluster.stop()
        super().close()


def trial(system: System, how: str, timeout: float) -> float:
    """One failover of ``system`` by ``how``; the seconds from the cut to the client's first reply from the new
    node."""
    holder: str | None = None

    def whole() -> bool:
        nonlocal holder
        holder = system.ready()
        return holder is not None

    try:
        wait(f"{system.name} whole", whole, 120)
    except SystemExit as exc:
        raise SystemExit(f"{exc}\n{system.diagnostics()}") from None
    assert holder is not None
    other = next(n for n in system.seg.ns if n != holder)
    ping = system.seg.pinger(holder, other, timeout)
    try:
        assert ping.stdout is not None
        if ping.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench_vs_keepalived: {system.name}: the client gets no reply from {holder}")
        if how == "power":
            pids = namespace_pids(system.seg.ns[holder])
            t0 = time.monotonic()
            ip("-n", system.seg.ns[holder], "link", "set", DEV, "down")
            kill_all(pids)
            kill_namespace(system.seg.ns[holder])
        else:
            t0 = time.monotonic()
            system.kill_daemon(holder)
        line = ping.stdout.readline().split()
        if not line or line[0] != "reply":
            raise SystemExit(
                f"bench_vs_keepalived: {system.name}: no reply from {other} within {timeout:g} s\n"
                f"{system.diagnostics()}"
            )
        took = float(line[1]) - t0
    finally:
        ping.kill()
        ping.wait()
        if ping.stdout:
            ping.stdout.close()
    system.after(holder)
    system.start(holder)
    return took


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials of each row and each cut (default 20)")
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"which systems (default {','.join(ROWS)}; also {', '.join(UNFENCED_ROWS + SPAWN_ROWS)})",
    )
    parser.add_argument("--how", default=",".join(HOW), help="power, kill or both (default)")
    parser.add_argument("--keep", action="store_true", help="keep the logs (the temporary directory) for a look")
    parser.add_argument(
        "--stall",
        type=float,
        default=600,
        help="then run bench_stall.py for this many seconds: 5 daemons at the same timings under stress-ng, "
        "no fault; 0 skips it (default 600)",
    )
    parser.add_argument(
        "--timing",
        default="",
        help="omha's [timing] instead of its defaults, for both the trials and the stall run: "
        "'dead_after=1.2,heartbeat=0.4' (to measure a candidate default; the goal counts at the defaults)",
    )
    parser.add_argument("--pinger", help=argparse.SUPPRESS)
    parser.add_argument("--old", help=argparse.SUPPRESS)
    parser.add_argument("--new", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=60, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.pinger:
        return _pinger.pinger(opts.pinger, opts.old, opts.new, opts.timeout, PING_EVERY)
    if os.geteuid() != 0:
        print("bench_vs_keepalived: needs root (network namespaces)", file=sys.stderr)
        return 2
    rows = [r for r in opts.rows.split(",") if r]
    hows = [h for h in opts.how.split(",") if h]
    missing = [p for p, wanted in (("keepalived", "keepalived" in rows), ("stress-ng", opts.stall > 0)) if wanted]
    missing = [p for p in missing if not shutil.which(p)]
    if missing:
        subprocess.run([os.path.join(ROOT, "scripts", "install-system-packages"), *missing], check=True)
    base = Path(tempfile.mkdtemp(prefix="omha-bench-vk-"))
    systems: list[System] = []
    results: dict[tuple[str, str], list[float]] = {(r, h): [] for r in rows for h in hows}
    try:
        for row in rows:
            tmp = base / row.replace("+", "-")
            tmp.mkdir()
            if row == "keepalived":
                systems.append(Keepalived(row, tmp))
            else:
                fenced, hosted = "unfenced" not in row, "spawn" not in row
                systems.append(Omha(row, tmp, row.startswith("omha+test"), fenced, parse_timing(opts.timing), hosted))
        for system in systems:
            for node in system.seg.ns:
                system.start(node)
        print(
            f"VIP failover, cut -> client's first echo reply from the new node; {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for n in range(opts.trials):
            for how in hows:
                for system in systems:
                    took = trial(system, how, opts.timeout)
                    results[(system.name, how)].append(took)
                    print(f"trial {n + 1:2d} {system.name:<11} {how:<5} {took:.3f} s", flush=True)
    finally:
        for system in systems:
            system.close()
        if opts.keep:
            print(f"logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| system | cut | trials | median | p90 | min | max | median / keepalived's |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for (row, how), values in results.items():
        ref = results.get(("keepalived", how))
        ratio = f"{statistics.median(values) / statistics.median(ref):.2f}x" if ref else "-"
        print(
            f"| {row} | {how} | {len(values)} | {statistics.median(values):.2f} s | {p90(values):.2f} s | "
            f"{min(values):.2f} s | {max(values):.2f} s | {ratio} |"
        )
    if opts.stall <= 0:
        return 0
    # the goal holds only together with no false failover at the same defaults under load: measure that now
    stall = [sys.executable, os.path.join(ROOT, "bench", "bench_stall.py"), "--duration", f"{opts.stall:g}"]
    stall += ["--timing", opts.timing] if opts.timing else []
    print(f"\nfalse failovers under load, same timings: {' '.join(stall[1:])}", flush=True)
    return subprocess.run(stall, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
