"""Run one campaign: a local cluster of real daemons, the fault schedule, and a record of everything done.

The harness writes ``BASE/chaos/nemesis.log`` (one JSON line per step it performed, with the monotonic time it
was done at, and every daemon exit it saw); the groups write their own history (:mod:`tests.chaos.worker`) and
the fence device its calls (:mod:`tests.chaos.fence`). :mod:`tests.chaos.checker` reads only those files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omha_testing.cluster import Cluster
from omha_testing.etcd import EtcdCluster, EtcdLocalCluster, EtcdMember
from omha_testing.netns import as_node

from omha_core.localcluster import _running, kill_strays, node_processes
from tests.chaos import clock, nemesis, site
from tests.chaos.disk import MountSampler, SharedDisk
from tests.chaos.etcdnet import NetEtcd
from tests.chaos.lan import PREFIX, VIP, Lan, Sampler
from tests.cts.netns import NodeNets

HERE = Path(__file__).resolve().parent
#: timings of the campaign's daemons (seconds): the test cluster's fast ones, a little more lenient under load
TIMING = {"heartbeat": 0.25, "dead_after": 1.5, "settle": 2.0}
#: on etcd, the lease TTL is dead_after: the etcd tests' timings
ETCD_TIMING = {"heartbeat": 0.2, "dead_after": 3.0, "settle": 1.0}
#: the stated bound: once the faults stop, every wanted group runs exactly once within this many seconds
RECOVERY_BOUND = 30.0
#: how long the settled cluster is watched after the faults stop, once every group ran exactly once
OBSERVE = 3.0
#: the fence device's timeout (a hanging fence is killed after it)
FENCE_TIMEOUT = 5.0
#: size of each node's state_dir (a tmpfs, so that the ``state_full`` fault can fill it)
STATE_SIZE = "256k"
#: size of the tmpfs the ``store_full`` fault puts in place of one node's shared directory (then filled up)
FULL_SIZE = "2m"
#: what the ``edit`` fault writes: a cltab line and an hactl line that are both invalid
BAD_CLTAB = "this line has no fields at all\n"
#: (a group name with a '/': words after the level are only a warning since hactl accepts what the original does)
BAD_HACTL = "bad/group run\n"


@dataclass
class Options:
    seed: int
    duration: float = 60.0
    nodes: int = 5
    groups: int = 3
    store: str = "sharedfs"
    #: one network namespace per node and a group ``gv`` holding a VIP there (sharedfs only)
    vip: bool = False
    #: every daemon in its own mount namespace and a group ``gm`` mounting a loop device through ``@mount``
    mount: bool = False
    #: every node in its own network namespace reaching etcd over its own link, for ``netns_cut`` (etcd only)
    netns: bool = False
    weights: dict[str, int] = field(default_factory=lambda: dict(nemesis.DEFAULT_WEIGHTS))


def worker_command(logdir: Path, group: str) -> str:
    return f"exec {sys.executable} {HERE / 'worker.py'} {logdir} {group}"


def fence_device(base: Path, nodes: list[str]) -> dict[str, Any]:
    """A ``command`` device that powers a local node off synchronously, read back by a status command."""
    script = f"{sys.executable} {HERE / 'fence.py'} {base}"
    return {
        "name": "plug",
        "kind": "command",
        "command": f"{script} $OMHA_ACTION $OMHA_TARGET",
        "status_command": f"{script} status $OMHA_TARGET",
        "timeout": FENCE_TIMEOUT,
        "nodes": {n: n for n in nodes},
    }


class Campaign:
    """One run of the campaign under ``base`` (a fresh directory)."""

    def __init__(self, base: Path, options: Options, out: Callable[[str], None] = print) -> None:
        self.base = base
        self.opt = options
        self.out = out
        self.logdir = base / "chaos"
        (self.logdir / "alive").mkdir(parents=True, exist_ok=True)
        self.names = [f"n{i}" for i in range(1, options.nodes + 1)]
        self.groups = [f"g{i}" for i in range(1, options.groups + 1)] + (["gv"] if options.vip else []) + (
            ["gm"] if options.mount else [])
        self.lan: Lan | None = None
        self.sampler: Sampler | None = None
        self.disk: SharedDisk | None = None
        self.mount_sampler: MountSampler | None = None
        self.nets: NodeNets | None = None
        self.timing = ETCD_TIMING if options.store == "etcd" else TIMING
        self.faults = nemesis.draw(options.seed, options.duration, self.names, self.groups,
                                   self.timing["dead_after"], options.weights)
        (self.logdir / "schedule.json").write_text(nemesis.dumps(options.seed, self.faults))
        self.frozen: set[str] = set()
        self.expected_exit: dict[int, str] = {}  # daemon pid -> why we ended it
        self.seen_exit: set[int] = set()
        self.stack = ExitStack()
        self.cluster: Cluster | None = None
        self.etcd: EtcdCluster | None = None
        self.etcd_down: dict[int, EtcdMember] = {}  # fault index -> the member it killed
        self.saved: dict[int, tuple[str, str]] = {}  # edit fault index -> (cltab, hactl) before it
        self.mounts: list[Path] = []
        self.jumps: dict[str, str] = {}  # node -> the wall-clock offset it runs with now (clock_jump)
        self.true_wrap: dict[str, list[str]] = {}  # node -> its command prefix with the true time
        self.shim: Path | None = None  # monofix.so, built when the schedule jumps clocks

    # -- records -----------------------------------------------------------------------------------------

    def log(self, ev: str, **fields: Any) -> None:
        fields.update(ev=ev, mono=time.monotonic(), wall=time.time())
        with open(self.logdir / "nemesis.log", "a") as fh:
            fh.write(json.dumps(fields) + "\n")

    def reap(self) -> None:
        """Record every daemon exit not recorded yet, with the reason when the harness caused it."""
        assert self.cluster is not None
        for node, proc in self.cluster.procs.items():
            rc = proc.poll()
            if rc is not None and proc.pid not in self.seen_exit:
                self.seen_exit.add(proc.pid)
                self.log("daemon_exit", node=node, pid=proc.pid, rc=rc, cause=self.expected_exit.get(proc.pid, ""))

    # -- the cluster ---------------------------------------------------------------------------------------

    def config(self) -> dict[str, dict[str, Any]]:
        config: dict[str, dict[str, Any]] = {
            "timing": dict(self.timing),
            "fencing": {"action": "off"},
            "init": {"stop_grace": [0, 1, 2], "respawn_pause": 2},
        }
        return config

    def mount_state_dirs(self) -> None:
        """Each node's state_dir on its own small tmpfs, for the ``state_full`` fault."""
        if "state_full" not in self.opt.weights:
            return
        for node in self.names:
            path = self.base / node / "state"
            path.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={STATE_SIZE},mode=0755", "omha-chaos-state",
                            str(path)], check=True)
            self.mounts.append(path)

    def unmount(self) -> None:
        for path in self.mounts:
            if subprocess.run(["umount", str(path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.mounts.clear()

    def start_cluster(self) -> Cluster:
        cltab = "".join(f"{g}:w{g}:run:respawn:{worker_command(self.logdir, g)}\n" for g in self.groups)
        hactl = "".join(f"{g} run\n" for g in self.groups)
        devices = [fence_device(self.base, self.names)]
        # the site plugin whose hooks raise on demand, for every node; each daemon knows its node name
        path = site.install(self.base / "site")
        env = {"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]),
               "OMHA_CHAOS_DIR": str(self.logdir)}
        wrap = {n: ["env", f"OMHA_CHAOS_NODE={n}"] for n in self.names}
        if self.opt.vip:
            self.lan = Lan(self.logdir, self.names)
            self.lan.open()
            cltab += f"gv:vip:run:respawn:@vip {VIP}/{PREFIX}\n"
            wrap = {n: [*as_node(self.lan.ns[n]), *wrap[n]] for n in self.names}
        if {"store_ro", "store_full"} & set(self.opt.weights) and self.opt.store == "sharedfs":
            # each daemon in its own mount namespace, the shared directory bind-mounted onto itself there, so
            # that the store_ro fault can remount one node's view read-only
            shared = str(self.base / "shared")
            for n in self.names:
                wrap[n] += ["unshare", "-m", "--propagation", "private", "sh", "-c",
                            'mount --bind "$0" "$0" && exec "$@"', shared]
        if self.opt.mount:
            self.disk = SharedDisk(self.base)
            cltab += self.disk.cltab_line()
            for n in self.names:
                if "unshare" not in wrap[n]:
                    wrap[n] += ["unshare", "-m", "--propagation", "private"]
        if self.opt.store == "etcd":
            endpoints: dict[str, list[str]] = {}
            if self.opt.netns:
                self.nets = NodeNets(self.names)
                net_etcd = NetEtcd(self.nets)
                self.etcd = net_etcd
                self.etcd.start()
                endpoints = {n: net_etcd.urls_for(n) for n in self.names}
                wrap = {n: [*self.nets.wrap(n), *wrap[n]] for n in self.names}
            else:
                self.etcd = EtcdCluster(3)
                self.etcd.start()
            c: Cluster = EtcdLocalCluster(self.base, self.etcd, endpoints=endpoints, nodes=self.names,
                                          config=self.config(), devices=devices, env=env, wrap=wrap)
            self.cluster = c
            c.load(cltab, hactl)  # type: ignore[attr-defined]
        else:
            c = Cluster(self.base, self.names, cltab=cltab, hactl=hactl, config=self.config(), devices=devices,
                        env=env, wrap=wrap)
            self.cluster = c
        self.mount_state_dirs()
        c.start()
        if self.lan is not None:
            self.sampler = Sampler(self.lan, self.logdir / "nemesis.log")
            self.sampler.start()
        if self.disk is not None:
            self.mount_sampler = MountSampler(str(c.sections["cluster"]["name"]), self.disk.target,
                                              self.logdir / "nemesis.log")
            self.mount_sampler.start()
        self.log("cluster_start", nodes=self.names, groups=self.groups, cluster=c.sections["cluster"]["name"])
        return c

    def alive(self, node: str) -> bool:
        assert self.cluster is not None
        proc = self.cluster.procs.get(node)
        return proc is not None and proc.poll() is None

    def live_instances(self) -> dict[str, list[tuple[str, int]]]:
        """Per group, the (node, pid) of each worker process alive right now."""
        found: dict[str, list[tuple[str, int]]] = {g: [] for g in self.groups}
        for path in (self.logdir / "alive").iterdir():
            group, node, pid = path.name.split(".")[:3]
            if _running(int(pid)) and group in found:
                found[group].append((node, int(pid)))
        return found

    def all_once(self) -> bool:
        return all(len(v) == 1 for v in self.live_instances().values())

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float, stable: float = 0.0) -> bool:
        """Poll ``predicate`` (reaping daemons meanwhile) until it held for ``stable`` seconds; False on timeout."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            self.reap()
            if predicate():
                since = since or time.monotonic()
                if time.monotonic() - since >= stable:
                    return True
            else:
                since = None
            time.sleep(0.05)
        if what != "schedule":
            self.log("wait_timeout", what=what)
        return False

    def power_on(self, node: str) -> None:
        assert self.cluster is not None
        if node in self.frozen:
            self.thaw(node)
        if not self.alive(node):
            self.reap()
            if self.lan is not None:
                self.lan.power_on(node)
            self.cluster.start(node)
            self.log("power_on", node=node, pid=self.cluster.procs[node].pid)

    def thaw(self, node: str) -> None:
        assert self.cluster is not None
        self.frozen.discard(node)
        self.cluster.procs[node].send_signal(signal.SIGCONT)
        self.log("thaw", node=node, pid=self.cluster.procs[node].pid, was_alive=self.alive(node))

    def stop_gracefully(self, node: str) -> None:
        """SIGTERM ``node``'s daemon (it stops its groups) and wait for it to exit."""
        assert self.cluster is not None
        proc = self.cluster.procs[node]
        self.expected_exit[proc.pid] = "stop"
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            self.log("stop_timeout", node=node, pid=proc.pid)
        self.reap()
        self.log("stopped", node=node, pid=proc.pid)

    def clock_jump(self, phase: str, fault: nemesis.Fault) -> None:
        """Restart ``fault.node`` with its wall clock offset by ``fault.also`` (begin), then with the true time
        (end). A node that is down or frozen at the begin is skipped; at the end it gets the true time back
        whatever happened meanwhile (a fence's power-on started it with the offset still on)."""
        assert self.cluster is not None
        node = fault.node
        if phase == "begin":
            if self.shim is None and not clock.missing():
                self.shim = clock.build_shim(self.logdir)  # a jump injected by hand (run() builds it up front)
            if self.shim is None:
                self.log("skip", kind="clock_jump", node=node, why=clock.missing() or "no shim")
                return
            if not self.alive(node) or node in self.frozen:
                self.log("skip", kind="clock_jump", node=node, why="daemon not running")
                return
            self.stop_gracefully(node)
            self.jumps[node] = fault.also
            self.set_clock(node)
            skew = self.clock_skew(node)
            self.power_on(node)
            self.log("clock_jump", node=node, offset=fault.also, skew=skew, pid=self.cluster.procs[node].pid)
            return
        if self.jumps.pop(node, None) is None:
            return
        self.set_clock(node)
        if self.alive(node) and node not in self.frozen:
            self.stop_gracefully(node)
        self.power_on(node)
        self.log("clock_back", node=node, pid=self.cluster.procs[node].pid)

    def clock_skew(self, node: str) -> float | None:
        """How far ahead (seconds) a Python started like ``node``'s daemon sees the wall clock, measured against
        the monotonic clock, which must stay the true one (None when the probe fails)."""
        assert self.cluster is not None
        probe = [*self.cluster.wrap.get(node, []), sys.executable, "-c",
                 "import time; print(time.time() - time.monotonic())"]
        try:
            out = subprocess.run(probe, capture_output=True, text=True, timeout=20, check=True)
            return round(float(out.stdout) - (time.time() - time.monotonic()), 1)
        except (subprocess.SubprocessError, ValueError, OSError):
            return None

    def set_clock(self, node: str) -> None:
        """Make ``node``'s next start run with the wall-clock offset in :attr:`jumps`, or the true time."""
        assert self.cluster is not None
        wrap = self.true_wrap.setdefault(node, list(self.cluster.wrap.get(node, [])))
        if node in self.jumps and self.shim is not None:
            at = wrap.index("env") + 1  # the wrap's ``env OMHA_CHAOS_NODE=…`` takes the clock's variables too
            wrap = [*wrap[:at], *clock.jump_env(self.shim, self.jumps[node]), *wrap[at:]]
        self.cluster.wrap[node] = list(wrap)

    def tell(self, node: str, group: str, level: str) -> None:
        """``omha tell`` from ``node``, or from the first node in order whose daemon runs unfrozen."""
        assert self.cluster is not None
        via = self.usable(node)
        begin = time.monotonic()
        out = self.cluster.omha(via, "tell", group, level, check=False)
        self.log("tell", node=via, group=group, level=level, rc=out.returncode, begin=begin,
                 error=out.stderr.strip()[-300:] if out.returncode else "")

    # -- the steps ---------------------------------------------------------------------------------------------

    def step(self, step: str, fault: nemesis.Fault) -> None:
        assert self.cluster is not None
        c, node = self.cluster, fault.node
        kind, phase = step.split(":")
        if kind == "crash" and phase == "begin":
            if not self.alive(node):
                self.log("skip", kind=kind, node=node, why="daemon not running")
                return
            self.frozen.discard(node)
            self.expected_exit[c.procs[node].pid] = "crash"
            c.procs[node].send_signal(signal.SIGKILL)
            c.procs[node].send_signal(signal.SIGCONT)
            c.procs[node].wait(30)
            self.log("crash", node=node, pid=c.procs[node].pid)
        elif kind == "freeze" and phase == "begin":
            if not self.alive(node):
                self.log("skip", kind=kind, node=node, why="daemon not running")
                return
            c.procs[node].send_signal(signal.SIGSTOP)
            self.frozen.add(node)
            self.log("freeze", node=node, pid=c.procs[node].pid)
        elif kind == "restart" and phase == "begin":
            if not self.alive(node) or node in self.frozen:
                self.log("skip", kind=kind, node=node, why="daemon not running")
                return
            self.stop_gracefully(node)
        elif kind == "clock_jump":
            self.clock_jump(phase, fault)
        elif kind in ("crash", "freeze", "restart") and phase == "end":
            self.power_on(node)
        elif kind == "kill_proc":
            live = self.live_instances()[fault.group]
            if not live:
                self.log("skip", kind=kind, group=fault.group, why="not running")
            for n, pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.log("kill_proc", node=n, group=fault.group, pid=pid)
                except ProcessLookupError:
                    pass
        elif kind == "flip":
            if phase == "begin":
                self.tell(node, fault.group, "stop")
            else:
                self.tell(fault.node2, fault.group, "run")
        elif kind in ("fence_fail", "fence_hang"):
            path = self.logdir / f"fence-fault.{node}"
            if phase == "begin":
                path.write_text(kind.split("_")[1])
                self.log(kind, node=node)
                self.step(f"{fault.also}:begin", fault)
            else:
                path.unlink(missing_ok=True)
                self.log(f"{kind}_end", node=node)
                self.power_on(node)
        elif kind == "edit":
            self.edit(phase, fault)
        elif kind == "store_ro":
            if not self.alive(node) or node in self.frozen:
                self.log("skip", kind=kind, node=node, why="daemon not running")
                return
            mode = "ro" if phase == "begin" else "rw"
            out = subprocess.run(["nsenter", "-t", str(c.procs[node].pid), "-m", "mount", "-o", f"remount,bind,{mode}",
                                  str(c.shared)], capture_output=True, text=True)
            self.log("store_ro", node=node, mode=mode, rc=out.returncode, error=out.stderr.strip()[-200:])
        elif kind == "netns_cut":
            if self.nets is None:
                self.log("skip", kind=kind, node=node, why="no --netns")
                return
            if phase == "begin":
                self.nets.cut(node)
            else:
                self.nets.heal(node)
            self.log("netns_cut", node=node, mode="cut" if phase == "begin" else "rw")
        elif kind == "store_full":
            self.store_full(phase, node)
        elif kind == "plugin_raise":
            toggle = self.logdir / f"plugin-raise.{node}"
            if phase == "begin":
                toggle.write_text(fault.also + "\n")
            else:
                toggle.unlink(missing_ok=True)
            self.log("plugin_raise", node=node, hooks=fault.also if phase == "begin" else "")
        elif kind == "state_full":
            fill = self.base / node / "state" / "chaos-fill"
            if phase == "begin":
                with open(fill, "wb") as fh:
                    try:
                        while True:
                            fh.write(b"\0" * 65536)
                            fh.flush()
                    except OSError as e:
                        self.log("state_full", node=node, error=str(e))
            else:
                fill.unlink(missing_ok=True)
                self.log("state_full_end", node=node)

        elif kind in ("etcd_kill", "etcd_leader_kill"):
            self.etcd_step(kind, phase, fault)
        else:
            raise ValueError(f"unknown step {step}")

    def documents(self) -> tuple[str, str]:
        """The cltab and hactl in force: the shared directory's files, or ``omha show`` on etcd."""
        assert self.cluster is not None
        if self.opt.store == "sharedfs":
            return (self.cluster.shared / "cltab").read_text(), (self.cluster.shared / "hactl").read_text()
        via = self.usable(self.names[0])
        return self.cluster.omha(via, "show", "cltab").stdout, self.cluster.omha(via, "show", "hactl").stdout

    def usable(self, node: str) -> str:
        """``node``, or the first node in order whose daemon runs unfrozen."""
        usable = [n for n in [node, *self.names] if self.alive(n) and n not in self.frozen]
        return usable[0] if usable else node

    def load(self, node: str, cltab: str | None, hactl: str | None) -> int:
        """``omha load`` from ``node`` (or a usable node); returns its exit status, logged."""
        assert self.cluster is not None
        args = []
        for name, text in (("cltab", cltab), ("hactl", hactl)):
            if text is not None:
                path = self.base / f"{name}.chaos-edit"
                path.write_text(text)
                args += [f"--{name}", str(path)]
        via = self.usable(node)
        out = self.cluster.omha(via, "load", *args, check=False)
        self.log("load", node=via, what=[a for a in args if a.startswith("--")], rc=out.returncode,
                 output=(out.stdout + out.stderr).strip()[-300:])
        return out.returncode

    def edit(self, phase: str, fault: nemesis.Fault) -> None:
        """An operator's edit during the faults: invalid ones must be refused, and the last good kept running."""
        assert self.cluster is not None
        index, variant = self.faults.index(fault), fault.also
        if self.opt.store == "etcd" and variant.endswith("_file"):
            variant = "load_" + variant.split("_")[0]  # no files to edit by hand on etcd
        if phase == "begin":
            try:
                cltab, hactl = self.saved[index] = self.documents()
            except (AssertionError, OSError) as e:  # omha show failed (etcd electing a leader): no edit this time
                self.log("skip", kind="edit", why=str(e)[-300:])
                return
            if variant == "cltab_file":
                (self.cluster.shared / "cltab").write_text(cltab + BAD_CLTAB)
            elif variant == "hactl_file":
                (self.cluster.shared / "hactl").write_text(hactl + BAD_HACTL)
            elif variant == "load_cltab":
                self.log("edit_result", expect="refused", rc=self.load(fault.node, cltab + BAD_CLTAB, None))
            elif variant == "load_hactl":
                self.log("edit_result", expect="refused", rc=self.load(fault.node, None, hactl + BAD_HACTL))
            else:
                self.log("edit_result", expect="accepted",
                         rc=self.load(fault.node, cltab + f"# chaos edit {index}\n", None))
            self.log("edit", node=fault.node, variant=variant)
        elif index in self.saved:
            cltab, hactl = self.saved.pop(index)
            if variant == "cltab_file":
                (self.cluster.shared / "cltab").write_text(cltab)
            elif variant == "hactl_file":
                (self.cluster.shared / "hactl").write_text(hactl)
            self.log("edit_end", variant=variant)

    def store_full(self, phase: str, node: str) -> None:
        """Replace ``node``'s view of the shared directory by a full tmpfs holding a copy of it, or give it back.

        Done in the node's own mount namespace: a small tmpfs is mounted on a fresh directory, the shared directory
        copied into it, the rest filled with a file until ENOSPC, and the tmpfs moved over the shared directory;
        the end unmounts it, which uncovers the real one. A node fenced meanwhile lost its namespace already."""
        assert self.cluster is not None
        if not self.alive(node) or node in self.frozen:
            self.log("skip", kind="store_full", node=node, why="daemon not running")
            return
        shared = str(self.cluster.shared)
        if phase == "begin":
            spare = self.base / f"full.{node}"
            spare.mkdir(exist_ok=True)
            script = (f'mount -t tmpfs -o size={FULL_SIZE} omha-chaos-full "$0" && cp -a "$1/." "$0/" && '
                      '{ dd if=/dev/zero of="$0/.chaos-fill" bs=4k 2>/dev/null; true; } && mount --move "$0" "$1"')
            argv = ["sh", "-c", script, str(spare), shared]
        else:
            argv = ["umount", shared]
        out = subprocess.run(["nsenter", "-t", str(self.cluster.procs[node].pid), "-m", *argv],
                             capture_output=True, text=True)
        self.log("store_full", node=node, mode="full" if phase == "begin" else "rw", rc=out.returncode,
                 error=out.stderr.strip()[-200:])

    def etcd_step(self, kind: str, phase: str, fault: nemesis.Fault) -> None:
        assert self.etcd is not None
        index = self.faults.index(fault)
        if phase == "begin":
            try:
                member = (self.etcd.leader() if kind == "etcd_leader_kill"
                          else self.etcd.members[nemesis.ETCD_MEMBERS.index(fault.node)])
            except RuntimeError as e:
                self.log("skip", kind=kind, why=str(e)[:200])
                return
            member.kill(signal.SIGKILL)
            self.etcd_down[index] = member
            self.log(kind, member=member.name)
        elif index in self.etcd_down:
            member = self.etcd_down.pop(index)
            try:
                self.etcd.restart(member)
                self.log("etcd_restart", member=member.name)
            except RuntimeError as e:
                self.log("etcd_restart_failed", member=member.name, why=str(e)[-300:])

    def inject(self, fault: nemesis.Fault) -> None:
        """Perform the begin step of an extra fault now (for scenarios written by hand), recorded like the rest."""
        self.faults.append(fault)
        (self.logdir / "schedule.json").write_text(nemesis.dumps(self.opt.seed, self.faults))
        self.log("step", step=f"{fault.kind}:begin", fault=len(self.faults) - 1, at=fault.at)
        self.step(f"{fault.kind}:begin", fault)

    # -- the run ------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Start the cluster, wait for every group, perform the schedule, let it settle, stop everything."""
        self.out(f"chaos: seed {self.opt.seed}, {self.opt.duration:g} s, {len(self.names)} nodes, "
                 f"store {self.opt.store}, {len(self.faults)} faults, records in {self.logdir}")
        if any(f.kind == "clock_jump" for f in self.faults) and not clock.missing():
            self.shim = clock.build_shim(self.logdir)
        try:  # started inside the try: an interrupt while starting still stops what was started
            c = self.start_cluster()
            if not self.wait("every group running once", self.all_once, 60, stable=1.0):
                raise RuntimeError(f"the cluster did not start every group once\n{c.diagnostics()}")
            t0 = time.monotonic()
            self.log("faults_begin", t0=t0)
            for at, step, index in nemesis.actions(self.faults):
                self.wait("schedule", lambda: False, max(0.0, t0 + at - time.monotonic()))
                self.log("step", step=step, fault=index, at=at)
                self.step(step, self.faults[index])
            # the faults stop: everything powered on, thawed, wanted
            for node in self.names:
                self.power_on(node)
            if self.etcd is not None:
                for index in list(self.etcd_down):
                    self.etcd_step("etcd_kill", "end", self.faults[index])
            for path in [*self.logdir.glob("fence-fault.*"), *self.logdir.glob("plugin-raise.*")]:
                path.unlink()
            for index in list(self.saved):
                self.edit("end", self.faults[index])
            for node in self.names:
                (self.base / node / "state" / "chaos-fill").unlink(missing_ok=True)
            for group in self.groups:
                self.tell(self.names[0], group, "run")
            self.log("faults_end")
            self.wait("settled", self.all_once, RECOVERY_BOUND + 10, stable=OBSERVE)
            self.log("end")
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """SIGTERM every daemon (they stop their groups), record exits and leftovers, then clean up."""
        c = self.cluster
        if c is not None:
            self.stop_daemons(c)
        self.unmount()
        if self.sampler is not None:
            self.sampler.stopping.set()
            self.sampler.join(5)
        if self.mount_sampler is not None:
            self.mount_sampler.stopping.set()
            self.mount_sampler.join(5)
        if self.lan is not None:
            self.lan.close()
        if self.disk is not None:
            self.disk.close()
        if self.etcd is not None:
            self.etcd.stop()
        if self.nets is not None:
            self.nets.close()

    def stop_daemons(self, c: Cluster) -> None:
        for proc in c.procs.values():
            if proc.poll() is None:
                self.expected_exit[proc.pid] = "stop"
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 40
        for proc in c.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.reap()
        name = str(c.sections["cluster"]["name"])
        time.sleep(0.5)
        for node in self.names:
            left = [p for p in node_processes(name, node) if _running(p)]
            if left:
                self.log("leftover", node=node, pids=left, cmdlines=[_cmdline(p) for p in left])
        if self.lan is not None or self.disk is not None:
            time.sleep(0.6)  # the samplers' last look, after every daemon stopped
        self.log("shutdown")
        c.stop()
        kill_strays(str(self.base))


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return ""
