"""Real etcd servers for tests: Debian's ``etcd`` binary on free 127.0.0.1 ports, data in a temp dir.

Reusable from any test module::

    from omha_testing.etcd import etcd_cluster

    def test_something(tmp_path):
        with etcd_cluster(size=3) as cluster:      # started, a leader elected
            cluster.endpoints                      # ["http://127.0.0.1:PORT", ...] for [etcd] endpoints
            cluster.leader().kill()                # SIGKILL the raft leader
            cluster.wait_ready()                   # until the survivors elected a new one
        # every member stopped, its data dir removed, even when the test failed

or the pytest fixtures ``etcd_server`` (one member, shared by a module) and ``etcd_three`` (three members, one per
test), after ``from omha_testing.etcd import etcd_server, etcd_three  # noqa: F401``.

Members use short raft timings (50 ms heartbeat, 500 ms election) so that a new leader is elected within about
a second of the old one's death, and keep their data on tmpfs (``/dev/shm``) when there is one, to spare the
shared disk the fsyncs. A member's output goes to ``<data dir>.log``; :meth:`EtcdCluster.logs` returns the tail of
every log, for assertion messages.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from omha_testing import require_commands
from omha_testing.cluster import Cluster

if TYPE_CHECKING:
    from omha_membership_etcd.store import EtcdStore

#: raft timings of test members (milliseconds)
HEARTBEAT_MS = 50
ELECTION_MS = 500
#: how long a start or a leader election may take before the fixture gives up
READY_TIMEOUT = 20.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def gateway(
    url: str,
    path: str,
    body: dict[str, Any],
    token: str | None = None,
    timeout: float = 2.0,
    context: ssl.SSLContext | None = None,
) -> Any:
    """POST ``body`` to etcd's JSON gateway ``url/v3/<path>`` (for tests poking etcd directly)."""
    req = urllib.request.Request(f"{url}/v3/{path}", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read() or b"{}")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@dataclass
class EtcdMember:
    """One etcd process."""

    name: str
    client_port: int
    peer_port: int
    data_dir: str
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def log_path(self) -> str:
        return f"{self.data_dir}.log"

    def start(self, initial_cluster: str, token: str, state: str = "new") -> None:
        args = [
            "etcd",
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.client_url,
            "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", token,
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            "--logger", "zap",
            "--log-outputs", "stderr",
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` and wait for the process to end (SIGKILL after 5 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(fh.readlines()[-lines:])
        except OSError:
            return ""


class EtcdCluster:
    """``size`` etcd members forming one cluster (not started until :meth:`start`).

    :param extra_args: more ``etcd`` options for every member (TLS files, ``--auth-token-ttl``, ...).
    :param scheme: ``https`` when ``extra_args`` make the client port speak TLS.
    :param context: the TLS context the fixture's own requests use (trusting the test CA, with a client cert).
    """

    def __init__(
        self,
        size: int = 1,
        extra_args: Sequence[str] = (),
        scheme: str = "http",
        context: ssl.SSLContext | None = None,
    ) -> None:
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.base_dir = tempfile.mkdtemp(prefix="omha-etcd-", dir=root)
        self.size = size
        self.scheme = scheme
        self.extra_args = list(extra_args)
        self.context = context
        self.token = f"omha-test-{uuid.uuid4().hex[:8]}"
        self.members: list[EtcdMember] = []
        self.auth_token: str | None = None

    def _plan(self) -> None:
        ports = free_ports(2 * self.size)
        self.members = [
            EtcdMember(
                name=f"m{i}",
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                data_dir=os.path.join(self.base_dir, f"m{i}"),
                scheme=self.scheme,
                extra_args=self.extra_args,
            )
            for i in range(self.size)
        ]

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of every member, for ``[etcd] endpoints``."""
        return [m.client_url for m in self.members]

    def start(self, attempts: int = 3) -> None:
        """Start every member and wait for a leader; new ports and a clean start if a port was taken meanwhile."""
        for attempt in range(attempts):
            self._plan()
            for m in self.members:
                m.start(self.initial_cluster, self.token)
            try:
                self.wait_ready()
                return
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                self.stop(remove=False)
                for m in self.members:
                    shutil.rmtree(m.data_dir, ignore_errors=True)

    def status(self, member: EtcdMember) -> dict[str, Any] | None:
        """``/v3/maintenance/status`` of one member, None when it does not answer."""
        if not member.running:
            return None
        try:
            doc = gateway(member.client_url, "maintenance/status", {}, self.auth_token, 1.0, self.context)
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and "header" in doc else None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until every running member answers and agrees on a leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(m.running for m in self.members):
                break
            statuses = [self.status(m) for m in self.members if m.running]
            leaders = {s.get("leader") for s in statuses if s}
            if statuses and all(statuses) and len(leaders) == 1 and leaders != {None} and leaders != {"0"}:
                return
            time.sleep(0.1)
        raise RuntimeError(f"etcd cluster not ready within {timeout}s:\n{self.logs()}")

    def leader(self) -> EtcdMember:
        """The member that is raft leader now."""
        self.wait_ready()
        for m in self.members:
            s = self.status(m)
            if s and s.get("leader") == s["header"].get("member_id"):
                return m
        raise RuntimeError(f"no etcd leader found:\n{self.logs()}")

    def etcdctl(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``etcdctl`` (API v3) against the running members; raises with its output on failure."""
        env = dict(os.environ, ETCDCTL_API="3")
        cmd = ["etcdctl", "--endpoints", ",".join(m.client_url for m in self.members if m.running)]
        if user:
            cmd += ["--user", user]
        done = subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {args[0] if args else ''} failed: {done.stderr.strip()}")
        return done

    def restart(self, member: EtcdMember) -> None:
        """Start a stopped member again on its data and wait until the cluster has a leader."""
        member.start(self.initial_cluster, self.token)
        self.wait_ready()

    def logs(self) -> str:
        return "\n".join(f"--- {m.name} ({m.log_path})\n{m.log_tail()}" for m in self.members)

    def stop(self, remove: bool = True) -> None:
        """Stop every member (SIGTERM, then SIGKILL) and remove the data."""
        for m in self.members:
            m.kill(signal.SIGTERM)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)


@contextmanager
def etcd_cluster(
    size: int = 1, extra_args: Sequence[str] = (), scheme: str = "http", context: ssl.SSLContext | None = None
) -> Iterator[EtcdCluster]:
    """A started etcd cluster of ``size`` members, stopped and removed on exit. Skips when etcd is missing."""
    require_commands("etcd", "etcdctl")
    cluster = EtcdCluster(size, extra_args, scheme, context)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def etcd_server() -> Iterator[EtcdCluster]:
    """One etcd member shared by a test module; give each test its own key prefix (cluster name)."""
    with etcd_cluster(1) as cluster:
        yield cluster


@pytest.fixture
def etcd_three() -> Iterator[EtcdCluster]:
    """A fresh three-member etcd cluster for one test."""
    with etcd_cluster(3) as cluster:
        yield cluster


# -- daemons on etcd: the local cluster of the plugin's tests, the split-brain CTS test, the fault campaign and
# bench/bench_etcd_failover.py (the etcd plugin is imported when a store is first needed) --------------------

#: timings of the daemons: the lease TTL is dead_after (3 s); a cycle every 0.2 s, or at once on a watch event
ETCD_TIMING = {"heartbeat": 0.2, "dead_after": 3.0, "settle": 1.0}
#: how long one etcd request may take on one endpoint
ETCD_TIMEOUT = 1.0


class EtcdLocalCluster(Cluster):
    """A local cluster whose daemons keep membership, statuses, claims and documents in etcd.

    :param etcd: the etcd servers.
    :param endpoints: per node, its ``[etcd] endpoints`` (default: every member, in the fixture's order).
    """

    def __init__(
        self,
        tmp: Path,
        etcd: EtcdCluster,
        endpoints: Mapping[str, list[str]] | None = None,
        config: dict[str, dict[str, Any]] | None = None,
        **kw: Any,
    ) -> None:
        self.etcd = etcd
        self.node_endpoints = dict(endpoints or {})
        self._store: EtcdStore | None = None
        sections: dict[str, dict[str, Any]] = {
            "cluster": {"store": "etcd", "membership": "etcd"},
            "timing": dict(ETCD_TIMING),
            "etcd": {"endpoints": etcd.endpoints, "timeout": ETCD_TIMEOUT},
        }
        for name, values in (config or {}).items():
            sections.setdefault(name, {}).update(values)
        super().__init__(tmp, config=sections, **kw)

    def write_config(self, node: str) -> None:
        """``node``'s omha.toml, with its own etcd endpoints when it has some."""
        common = self.sections["etcd"]
        self.sections["etcd"] = {**common, "endpoints": self.node_endpoints.get(node, self.etcd.endpoints)}
        try:
            super().write_config(node)
        finally:
            self.sections["etcd"] = common

    @property
    def store(self) -> EtcdStore:
        """The test's own view of the cluster's etcd store (every member, none of the nodes' proxies)."""
        if self._store is None:
            raw = {
                "node": "test-observer",
                "cluster": {"name": self.sections["cluster"]["name"], "store": "etcd", "membership": "etcd"},
                "etcd": {"endpoints": self.etcd.endpoints, "timeout": ETCD_TIMEOUT},
            }
            from omha_membership_etcd.store import EtcdStore

            from omha_core.config import validate_config
            from omha_core.plugins import get_plugin_manager

            self._store = EtcdStore(validate_config(raw, "test", get_plugin_manager()))
            self._store.open()
        return self._store

    def load(self, cltab: str, hactl: str) -> None:
        """Publish cltab and hactl to etcd the way an operator does: ``omha load``."""
        (self.tmp / "cltab.new").write_text(cltab)
        (self.tmp / "hactl.new").write_text(hactl)
        self.omha(self.names[0], "load", "--cltab", str(self.tmp / "cltab.new"), "--hactl", str(self.tmp / "hactl.new"))

    def report(self) -> dict[str, Any]:
        """The cluster report read from etcd (retried through an etcd leader election)."""
        from omha_core.errors import StoreError
        from omha_core.report import cluster_report

        deadline = time.monotonic() + 10.0
        while True:
            try:
                return cluster_report(self.store, str(self.sections["cluster"]["name"]))
            except StoreError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def fence_record(self, node: str) -> dict[str, Any]:
        return dict(self.store.fence_records().get(node) or {})

    def placement(self, groups: list[str]) -> dict[str, list[str]]:
        """Where each group runs at its level, from one report."""
        rep = self.report()
        up = {n for n, v in rep["nodes"].items() if v["state"] == "up"}
        out = {}
        for g in groups:
            info = rep["groups"].get(g) or {"instances": {}, "want": None}
            out[g] = sorted(
                n
                for n, i in info["instances"].items()
                if n in up
                and i["level"] == info["want"]
                and i["state"] in ("DONE", "PASSED")
                and self.started_last_on(g, n)
            )
        return out

    def starts(self, group: str) -> list[str]:
        """Nodes on which ``group``'s run-level command started, in order."""
        return [ln.split()[1] for ln in self.safety_log(group) if ln.startswith("start")]

    def history(self) -> list[Event]:
        """Every change under the cluster's prefix, oldest first, read back from etcd (nothing is compacted)."""
        from omha_membership_etcd.client import unb64
        from omha_membership_etcd.keys import range_end

        client, keys = self.store.client, self.store.keys
        stream = client.watch(keys.all, range_end(keys.all), 1, time.monotonic() + 10)
        events: list[Event] = []
        try:
            current = client.range(keys.all, range_end(keys.all))[1]
            while not events or events[-1].revision < current:
                result = stream.next(time.monotonic() + 5)
                if result is None:
                    break
                for e in result.get("events") or ():
                    kv = e.get("kv") or {}
                    key = unb64(kv.get("key")).decode()[len(keys.all) :]
                    events.append(
                        Event(int(kv.get("mod_revision", 0)), e.get("type", "PUT"), key, unb64(kv.get("value")))
                    )
        finally:
            stream.close()
        return events

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self._store is not None:
                self._store.close()


@dataclass
class Event:
    """One change in etcd: its revision, PUT or DELETE, the key under the cluster's prefix, the new value."""

    revision: int
    kind: str
    key: str
    value: bytes

    @property
    def doc(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.value)
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}
