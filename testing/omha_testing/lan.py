"""A throw-away Ethernet segment of network namespaces for the ``@vip`` tests: two cluster nodes and a client.

::

    ns <tag>-a: veth-a 02:00:00:00:00:0a ----+
                                             br0 (bridge in ns <tag>-c, the client: 192.0.2.1, 2001:db8::1)
    ns <tag>-b: veth-b 02:00:00:00:00:0b ----+

The bridge is a plain learning switch (no STP delay, no multicast snooping). Nodes have their own fixed
addresses (192.0.2.2/.3, 2001:db8::2/::3) so that the agent has a subnet to find an interface by.
Only documentation prefixes are used, and nothing leaves the namespaces. Everything created — namespaces,
and the agent processes started through :meth:`Lan.spawn_agent` — is removed by :meth:`Lan.close`.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from omha_testing import require_commands, require_root
from omha_testing.capture import Capture
from omha_testing.unprivileged import base_python, make_site

SETPRIV_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS``; raise with its stderr when it fails and ``check`` is set."""
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 15.0, step: float = 0.05) -> None:
    """Poll ``predicate`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


@dataclass(frozen=True)
class Node:
    """One cluster node: its namespace, its interface towards the segment and that interface's MAC."""

    ns: str
    dev: str
    mac: str


class Lan:
    """The segment described in the module docstring, built by :meth:`open` and removed by :meth:`close`."""

    def __init__(self) -> None:
        tag = f"omha-vip-{uuid.uuid4().hex[:8]}"
        self.client = f"{tag}-c"
        self.a = Node(f"{tag}-a", "veth-a", "02:00:00:00:00:0a")
        self.b = Node(f"{tag}-b", "veth-b", "02:00:00:00:00:0b")
        self._made: list[str] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._captures: list[Capture] = []
        #: the world-readable copy of the agent's code for runs as ``nobody``, made on first use
        self._nobody_site: Path | None = None

    def open(self) -> Lan:
        """Create the namespaces, the bridge and the links, and bring everything up."""
        for ns in (self.client, self.a.ns, self.b.ns):
            ip("netns", "add", ns)
            self._made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        c = self.client
        ip("-n", c, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        ip("-n", c, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0")
        ip("-n", c, "link", "set", "br0", "up")
        ip("-n", c, "addr", "add", "192.0.2.1/24", "dev", "br0")
        ip("-n", c, "addr", "add", "2001:db8::1/64", "dev", "br0", "nodad")
        for node, own in ((self.a, "2"), (self.b, "3")):
            port = "port-" + node.dev[-1]
            ip("-n", c, "link", "add", port, "type", "veth", "peer", "name", node.dev, "netns", node.ns)
            ip("-n", c, "link", "set", port, "master", "br0", "up")
            ip("-n", node.ns, "link", "set", node.dev, "address", node.mac, "up")
            ip("-n", node.ns, "addr", "add", f"192.0.2.{own}/24", "dev", node.dev)
            ip("-n", node.ns, "addr", "add", f"2001:db8::{own}/64", "dev", node.dev, "nodad")
        return self

    def close(self) -> None:
        """Stop every capture and agent process still running, then delete the namespaces (and every link)."""
        for capture in self._captures:
            capture.close()
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        for ns in reversed(self._made):
            ip("netns", "del", ns, check=False)
        if self._nobody_site is not None:
            shutil.rmtree(self._nobody_site.parent, ignore_errors=True)

    # -- running the agent exactly as the daemon does ------------------------------------------------------

    def _agent_cmd(self, node: Node, action: str, args: str, nobody: bool) -> list[str]:
        # as nobody: the base interpreter on a world-readable copy of the code (see unprivileged.py)
        python = [*SETPRIV_NOBODY, base_python(), "-s"] if nobody else [sys.executable]
        return ["ip", "netns", "exec", node.ns, *python, "-m", "omha_core.agent", "vip", action, args]

    def agent(self, node: Node, action: str, args: str, nobody: bool = False) -> subprocess.CompletedProcess[str]:
        """``python -m omha_core.agent vip ACTION ARGS`` inside ``node``'s namespace, to completion; as ``nobody``
        from a world-readable copy of the code, so that it runs wherever the clone lives."""
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        if nobody:
            if self._nobody_site is None:
                self._nobody_site = make_site()
            env["PYTHONPATH"] = str(self._nobody_site)
        cmd = self._agent_cmd(node, action, args, nobody)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd="/")

    def spawn_agent(self, node: Node, action: str, args: str) -> subprocess.Popen[str]:
        """Start the agent in the background (``respawn``); :meth:`close` stops it if the test does not."""
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        cmd = self._agent_cmd(node, action, args, False)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self._procs.append(proc)
        return proc

    @staticmethod
    def wait_acquired(proc: subprocess.Popen[str], timeout: float = 15.0) -> str:
        """Read a ``respawn`` agent's stderr until it reports its acquire done; return what was read.

        Only from then on is a loss "lost" (exit 3): the interface vanishing during the acquire's announce
        is a failed acquire (exit 1). Reads the raw descriptor, so a later ``communicate()`` loses nothing.
        """
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        seen = b""
        deadline = time.monotonic() + timeout
        while b": acquired; monitoring every" not in seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise AssertionError(f"the agent never reported its acquire done; stderr: {seen.decode()}")
            seen += chunk
        return seen.decode()

    # -- observing the wire ----------------------------------------------------------------------------------

    def capture(self, ns: str | None = None, ifname: str = "br0") -> Capture:
        """Start capturing what ``ifname`` in ``ns`` (default: the client's bridge) receives from other hosts."""
        script = str(Path(__file__).with_name("capture.py"))
        cmd = ["ip", "netns", "exec", ns or self.client, sys.executable, script, ifname]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            capture = Capture(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        self._captures.append(capture)
        return capture

    def ping_from(self, node: Node, address: str = "192.0.2.1") -> None:
        """One echo request from ``node`` to ``address`` (the client by default), answered or failing the test."""
        cmd = ["ip", "netns", "exec", node.ns, "ping", "-n", "-c", "1", "-W", "5", address]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        assert done.returncode == 0, f"{node.ns} cannot ping {address}: {done.stdout}{done.stderr}"

    # -- observing addresses and reachability ----------------------------------------------------------------

    def addresses(self, ns: str, dev: str) -> list[str]:
        """``ADDRESS/PREFIX`` of every address on ``dev`` in ``ns``."""
        out = ip("-n", ns, "-j", "addr", "show", "dev", dev).stdout
        return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link.get("addr_info", [])]

    def labels(self, ns: str, dev: str) -> dict[str, str]:
        """IPv4 address -> its label on ``dev``."""
        out = ip("-n", ns, "-j", "-4", "addr", "show", "dev", dev).stdout
        return {a["local"]: a.get("label", "") for link in json.loads(out) for a in link.get("addr_info", [])}

    def ping(self, address: str, wait: int = 3) -> bool:
        """One echo request from the client; True when it was answered."""
        cmd = ["ip", "netns", "exec", self.client, "ping", "-n", "-c", "1", "-W", str(wait), address]
        return subprocess.run(cmd, capture_output=True, timeout=wait + 10).returncode == 0

    def neighbour(self, address: str) -> str | None:
        """The MAC the client's neighbour table holds for ``address``, or None (no entry, or unresolved)."""
        out = ip("-n", self.client, "-j", "neigh", "show", "to", address, "dev", "br0").stdout
        for entry in json.loads(out or "[]"):
            if entry.get("lladdr"):
                return str(entry["lladdr"])
        return None


def plug_puller(base: Path, nodes: dict[str, Node]) -> dict[str, object]:
    """A ``command`` fence device that powers a node off: its daemon and processes killed, its link down."""
    kill = f"{sys.executable} -m omha_core.localcluster power-off {base}"
    return {
        "name": "plug",
        "kind": "command",
        "command": f'set -- $OMHA_TARGET; {kill} "$1" && ip -n "$2" link set dev "$3" down',
        "nodes": {name: f"{name} {node.ns} {node.dev}" for name, node in nodes.items()},
    }


def link_up(node: Node) -> bool:
    return "UP" in ip("-n", node.ns, "-o", "link", "show", "dev", node.dev).stdout.split(">")[0]


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Two node namespaces and a client namespace on one bridge, removed after the test (import it into a
    conftest to use it: the ``@vip`` and ``@ocf`` tests do)."""
    require_root()
    require_commands("ip", "ping", "setpriv")
    segment = Lan()
    try:
        yield segment.open()
    finally:
        segment.close()
