"""systemd integration with a real daemon and a small sd_notify listener standing in for systemd.

The listener is what systemd is to a ``Type=notify`` service with ``WatchdogSec=``: a unix datagram socket named
by ``$NOTIFY_SOCKET`` that reads ``READY=1``, ``STATUS=...``, ``WATCHDOG=1`` (with the sender's credentials, as
systemd checks them), and kills and restarts the service when the pings stop for longer than the watchdog time.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

pytestmark = pytest.mark.slow
#: WatchdogSec of the stand-in: generous, so that a loaded test machine does not trip it by accident
WATCHDOG_SEC = 5.0


class NotifyListener:
    """``$NOTIFY_SOCKET``: records each message with its sender's pid; optionally acts as systemd's watchdog."""

    def __init__(self) -> None:
        self.path = f"/tmp/omha-notify-{uuid.uuid4().hex[:10]}.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, int, str]] = []
        self.lock = threading.Lock()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        creds = struct.calcsize("3i")
        while not self.closed.is_set():
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
            except TimeoutError:
                continue
            except OSError:
                return
            pid = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds])[0]
            with self.lock:
                self.messages.extend((time.monotonic(), pid, line) for line in data.decode().split("\n") if line)

    def received(self, prefix: str, pid: int | None = None) -> list[tuple[float, int, str]]:
        with self.lock:
            return [m for m in self.messages if m[2].startswith(prefix) and (pid is None or m[1] == pid)]

    def watch(self, pid: int, restart: Callable[[], None], timeout: float) -> float:
        """Act as systemd's watchdog for ``pid``: once its pings stop for ``timeout`` s, SIGABRT it (systemd's
        WatchdogSignal), SIGKILL it when it does not die (TimeoutAbortSec), then ``restart``; returns when the
        silence began."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pings = self.received("WATCHDOG=1", pid)
            last = pings[-1][0] if pings else None
            if last is not None and time.monotonic() - last > timeout:
                os.kill(pid, signal.SIGABRT)
                time.sleep(1.0)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                restart()
                return last
            time.sleep(0.1)
        raise AssertionError(f"pid {pid} never went silent for {timeout} s: {self.messages[-5:]}")

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        os.unlink(self.path)


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    lst = NotifyListener()
    yield lst
    lst.close()


@pytest.fixture
def single(tmp_path: Path, listener: NotifyListener) -> Iterator[Cluster]:
    require_commands("flock")
    env = {"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": str(int(WATCHDOG_SEC * 1e6))}
    c = Cluster(tmp_path, 1, cltab=web_cltab(tmp_path), hactl="web run\n", env=env)
    yield c
    c.close()


def server_pids(c: Cluster) -> list[int]:
    return [int(ln.split()[2]) for ln in c.safety_log("web") if ln.startswith("start")]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ready_status_and_watchdog_pings_reach_systemd(single: Cluster, listener: NotifyListener) -> None:
    single.start()
    pid = single.procs["n1"].pid
    single.wait_running("web")
    single.wait_for("a STATUS naming web", lambda: any("web@run" in m[2] for m in listener.received("STATUS=", pid)))
    single.wait_for("three watchdog pings", lambda: len(listener.received("WATCHDOG=1", pid)) >= 3)
    assert listener.received("READY=1", pid)
    status = [m[2] for m in listener.received("STATUS=", pid)][-1]
    assert status.startswith("STATUS=quorate; 1/1 nodes up; here: web@run")
    single.omha("n1", "shutdown", "--wait")
    single.wait_for("STOPPING", lambda: listener.received("STOPPING=1", pid))


def test_watchdog_restarts_a_stalled_daemon_whose_guard_stopped_its_groups(
    single: Cluster, listener: NotifyListener
) -> None:
    single.start()
    daemon = single.procs["n1"]
    single.wait_running("web")
    single.wait_for("watchdog pings", lambda: listener.received("WATCHDOG=1", daemon.pid))
    [server] = server_pids(single)
    assert alive(server)
    daemon.send_signal(signal.SIGSTOP)  # the loop stalls: no more pings
    stopped_at = time.monotonic()
    restarted: list[float] = []

    def restart() -> None:
        daemon.wait(10)  # reap the killed daemon, as systemd does
        # the guard noticed its daemon die and stopped the group before the new daemon started
        single.wait_for("the guard to stop the old server", lambda: not alive(server), 15)
        restarted.append(time.monotonic())
        single.start("n1")

    silent_since = listener.watch(daemon.pid, restart, WATCHDOG_SEC)
    assert silent_since <= stopped_at + 1.0  # the last ping came before (or as) the loop stalled
    assert daemon.returncode == -signal.SIGKILL or daemon.returncode == -signal.SIGABRT
    assert restarted
    new = single.procs["n1"]
    assert new.pid != daemon.pid
    single.wait_for("the group started again by the new daemon", lambda: len(server_pids(single)) == 2, 30)
    single.wait_running("web")
    assert alive(server_pids(single)[1])
    single.wait_for("pings from the new daemon", lambda: listener.received("WATCHDOG=1", new.pid))


def test_under_journald_the_daemon_and_its_children_log_with_priorities(tmp_path: Path) -> None:
    """Started by systemd with ``[daemon] log`` unset: stderr is the journal stream (``$JOURNAL_STREAM``); each
    line carries its priority, no timestamp, and a child's output stays attributed to its group and entry."""
    c = Cluster(tmp_path, 1, cltab="web:hello:run:once:echo hello from web\n", hactl="web run\n")
    conf = c.config_path("n1")
    conf.write_text("\n".join(ln for ln in conf.read_text().splitlines() if not ln.startswith("log = ")) + "\n")
    stream = tmp_path / "n1" / "stderr.log"  # what LocalCluster connects the daemon's stderr to
    stream.touch()
    st = os.stat(stream)
    c.env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    try:
        c.start()
        c.wait_for("the child's line", lambda: "hello from web" in stream.read_text(), 30)
        lines = stream.read_text().splitlines()
        assert "<6>n1 omha.init INFO web/hello: hello from web" in lines
        assert any(ln.startswith("<6>n1 omha.daemon INFO node n1 up") for ln in lines)
        assert all(ln.startswith("<") for ln in lines), lines
    finally:
        c.close()
