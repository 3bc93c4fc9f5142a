"""Several omha nodes on one machine: separate ``omha daemon`` processes sharing one directory.

Used by ``omha demo`` and by the multi-node tests; also handy to try a cltab before deploying it. Each node has
its own ``omha.toml``, state directory and log under one temporary directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.config import validate_config
from omha_core.report import cluster_report

FAST_TIMING = {"heartbeat": 0.2, "dead_after": 1.0, "settle": 2.0}


def toml_value(value: Any) -> str:
    return (
        json.dumps(value)
        if not isinstance(value, dict)
        else "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    )


class LocalCluster:
    """N daemons (``n1``..``nN``) sharing ``<tmp>/shared``; each has its own config, state dir and log."""

    def __init__(
        self,
        tmp: Path,
        nodes: int | list[str] = 3,
        cltab: str = "",
        hactl: str = "",
        config: dict[str, dict[str, Any]] | None = None,
        top: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        devices: list[dict[str, Any]] | None = None,
        wrap: dict[str, list[str]] | None = None,
    ) -> None:
        self.tmp = tmp
        self.shared = tmp / "shared"
        (tmp / "safety").mkdir(parents=True, exist_ok=True)
        self.shared.mkdir(exist_ok=True)
        self.names = [f"n{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else list(nodes)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sections: dict[str, dict[str, Any]] = {
            "cluster": {"name": f"local-{os.getpid()}-{int(time.monotonic() * 1000) % 100000}"},
            "sharedfs": {"path": str(self.shared)},
            "timing": dict(FAST_TIMING),
            "init": {"stop_grace": [0, 1, 2], "respawn_pause": 2},
        }
        for name, values in (config or {}).items():
            self.sections.setdefault(name, {}).update(values)
        self.top = top or {}
        #: ``[[fencing.devices]]`` entries
        self.devices = list(devices or [])
        #: per node, a command prefix for its daemon (``["ip", "netns", "exec", "nsA"]``, ``["unshare", "-m"]``)
        self.wrap = wrap or {}
        self.env = env or {}
        if cltab:
            (self.shared / "cltab").write_text(cltab)
        if hactl:
            (self.shared / "hactl").write_text(hactl)
        for name in self.names:
            self.write_config(name)

    def config_path(self, node: str) -> Path:
        return self.tmp / node / "omha.toml"

    def write_config(self, node: str) -> None:
        """(Re)write ``node``'s omha.toml from the cluster's sections."""
        d = self.tmp / node
        d.mkdir(exist_ok=True)
        sections = {k: dict(v) for k, v in self.sections.items()}
        sections.setdefault("daemon", {}).update({"state_dir": str(d / "state"), "log": str(d / "omha.log")})
        lines = [f'node = "{node}"'] + [f"{k} = {toml_value(v)}" for k, v in self.top.items()]
        for name, values in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        for dev in self.devices:
            lines.append("[[fencing.devices]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in dev.items()]
        self.config_path(node).write_text("\n".join(lines) + "\n")

    def start(self, *nodes: str) -> None:
        for node in nodes or self.names:
            log = open(self.tmp / node / "stderr.log", "ab")  # noqa: SIM115 - owned by the process
            env = {**os.environ, **self.env}
            env.pop("OMHA_CONFIG", None)
            proc = self.procs[node] = subprocess.Popen(
                [
                    *self.wrap.get(node, []),
                    sys.executable,
                    "-m",
                    "omha_core.cli",
                    "daemon",
                    "-c",
                    str(self.config_path(node)),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
            log.close()
            (self.tmp / node / "daemon.pid").write_text(str(proc.pid))

    def kill(self, node: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[node]
        proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=60)

    def omha(self, node: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``omha`` CLI with ``node``'s configuration."""
        env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        out = subprocess.run(
            [sys.executable, "-m", "omha_core.cli", *args[:1], "-c", str(self.config_path(node)), *args[1:]],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"omha {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out

    def report(self) -> dict[str, Any]:
        config = validate_config({"sharedfs": {"path": str(self.shared)}})
        store = SharedDirStore(config)
        store.open()
        # a daemon stalled for a moment on this loaded test machine is not "no daemon runs": be lenient
        dead_after = 3 * float(self.sections["timing"].get("dead_after", 2.0))
        return cluster_report(store, str(self.sections["cluster"]["name"]), dead_after)

    def fence_record(self, node: str) -> dict[str, Any]:
        """The last fence record of ``node`` ({} when never fenced)."""
        path = self.shared / "fence" / f"{node}.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def running(self, group: str) -> list[str]:
        """Nodes where ``group`` is at its wanted level and settled (DONE or PASSED), as published."""
        rep = self.report()
        g = rep["groups"].get(group)
        if not g:
            return []
        up = {n for n, v in rep["nodes"].items() if v["state"] == "up"}
        return sorted(
            n
            for n, i in g["instances"].items()
            if n in up and i["level"] == g["want"] and i["state"] in ("DONE", "PASSED")
        )

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.diagnostics()}")

    def wait_running(self, group: str, timeout: float = 30.0, exclude: tuple[str, ...] = ()) -> str:
        nodes = self.wait_for(f"{group} running", lambda: [n for n in self.running(group) if n not in exclude], timeout)
        assert len(nodes) == 1, f"{group} running on {nodes}"
        return str(nodes[0])

    def log(self, node: str) -> str:
        path = self.tmp / node / "omha.log"
        return path.read_text() if path.exists() else ""

    def diagnostics(self) -> str:
        out = [json.dumps(self.report(), indent=1, default=str)[:6000]]
        for node in self.names:
            out.append(f"--- {node} log (tail)")
            out.append("\n".join(self.log(node).splitlines()[-25:]))
            err = self.tmp / node / "stderr.log"
            if err.exists() and err.read_text().strip():
                out.append(f"--- {node} stderr (tail)\n" + "\n".join(err.read_text().splitlines()[-15:]))
        return "\n".join(out)

    def stop(self) -> None:
        """SIGTERM every daemon (they stop their groups), then SIGKILL stragglers and their sessions."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        kill_strays(str(self.tmp))
        self.remove_cgroup_trees()

    def remove_cgroup_trees(self) -> list[str]:
        """Remove the emptied cgroup trees of this cluster's inits (a node powered off and not started again
        leaves its last one); call once every daemon is stopped."""
        from omha_core.init.cgroups import remove_emptied_trees
        from omha_core.init.owners import scope_of

        scopes = {scope_of(node, os.path.abspath(self.tmp / node / "state")) for node in self.names}
        return remove_emptied_trees(scopes)


def node_processes(cluster: str, node: str) -> list[int]:
    """Processes started by ``node`` of ``cluster``: their environment carries OMHA_CLUSTER and OMHA_NODE."""
    want = {f"OMHA_CLUSTER={cluster}".encode(), f"OMHA_NODE={node}".encode()}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = set(fh.read().split(b"\0"))
        except OSError:
            continue
        if want <= env:
            found.append(int(pid))
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _cluster_name(base: Path, node: str) -> str:
    """The cluster name in a local node's omha.toml, read without validating the whole file: validation loads
    every plugin, and the fence commands that call this are on the failover's critical path."""
    data = tomllib.loads((base / node / "omha.toml").read_text())
    return str(data.get("cluster", {}).get("name", "omha"))


def power_off(base: Path, node: str, timeout: float = 10.0) -> bool:
    """ "Pull the plug" of a local node: SIGKILL its daemon and every process it started; True once all are gone.

    This is what the local cluster's ``command`` fence device runs, so that fencing in tests and in the demo
    really stops a node (even a frozen one whose processes still run) before its groups move.

    A real power cut stops every process at the same instant; signals arrive one at a time. So the node is first
    frozen: SIGSTOP to its daemon (which then forks nothing more), then to every descendant of the daemon and every
    process carrying the node's environment marker, scanning until a scan finds none not yet stopped; only then
    is everything SIGKILLed. Killing in one pass lost a race: a group process killed first was respawned by its
    daemon in the instant before the daemon's own SIGKILL, and the child, between fork and exec, neither carried
    the marker yet nor stayed the dead daemon's child, so it outlived the "power cut" (CTS Stonithd, once in CI).
    """
    pid_file = base / node / "daemon.pid"
    cluster = _cluster_name(base, node)
    daemon = int(pid_file.read_text()) if pid_file.exists() else None
    if daemon is not None and str(base) not in _cmdline(daemon):
        daemon = None  # gone, and its pid perhaps reused: never freeze a stranger's process tree
    frozen: set[int] = set()
    while True:
        found = set(node_processes(cluster, node))
        if daemon is not None:
            found |= {daemon} | _descendants(daemon)
        new = {p for p in found - frozen if _running(p)}
        if not new:
            break
        for pid in sorted(new, key=lambda p: p != daemon):  # the daemon first: it spawns no more once stopped
            _signal(pid, signal.SIGSTOP)
        frozen |= new
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in frozen | set(node_processes(cluster, node)) if _running(p)]
        if not alive:
            return True
        for pid in alive:
            _signal(pid, signal.SIGKILL)
        time.sleep(0.02)
    return False


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except OSError:
        pass


def _descendants(root: int) -> set[int]:
    """Every live descendant of ``root``, from the parent links in /proc (a process between fork and exec too)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_strays(marker: str) -> list[int]:
    """SIGKILL every process whose command line mentions ``marker`` (a safety net for clean-up)."""
    killed = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
            except OSError:
                pass
    return killed


def fence_device(base: Path, nodes: list[str], name: str = "localkill") -> dict[str, Any]:
    """A ``command`` fence device entry that powers off local nodes with :func:`power_off`."""
    return {
        "name": name,
        "kind": "command",
        "command": f"{sys.executable} -m omha_core.localcluster power-off {base} $OMHA_TARGET",
        # read back, so that a fence through it is verified like a real power strip's
        "status_command": f"{sys.executable} -m omha_core.localcluster status {base} $OMHA_TARGET",
        "nodes": {n: n for n in nodes},
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m omha_core.localcluster power-off BASE NODE`` (the fence command) or ``status BASE NODE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "power-off":
        return 0 if power_off(Path(args[1]), args[2]) else 1
    if len(args) == 3 and args[0] == "status":
        print(
            "on" if any(_running(p) for p in node_processes(_cluster_name(Path(args[1]), args[2]), args[2])) else "off"
        )
        return 0
    print("usage: python -m omha_core.localcluster power-off|status BASE NODE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
