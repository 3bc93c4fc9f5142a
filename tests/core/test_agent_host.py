"""The agent host (omha_core/agent_host.py, omha_core/init/host.py): resource-agent actions forked by a long-lived
process instead of each starting Python, with every promise a started action had.

Each property is checked both ways (``agent_host`` ``auto`` and ``off``), so a difference between a forked and a
started action shows as a failure of one of the two.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from omha_core.init import DONE, FAILED, PASSED, LocalInit
from omha_core.init import host as host_module
from tests.core import probe_agent
from tests.core.init_helpers import require_cgroup2, run, running_init, wait_until

ROOT = str(Path(__file__).resolve().parents[2])
#: the children find the probe agent by name, as the daemon tells them where installed agents live
ENV = {"OMHA_AGENT_CLASSES": probe_agent.CLASSES, "PYTHONPATH": ROOT}


#: signals ignored in every Python agent however it is made: SIGPIPE and SIGXFSZ (Python ignores them at start-up)
#: and glibc's internal signals 32 and 33 (its posix_spawn ignores them in the new process, and exec keeps that)
IGNORED_ANYWAY = 1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1) | 1 << 31 | 1 << 32


@pytest.fixture(params=["auto", "off"])
def host_mode(request: pytest.FixtureRequest) -> str:
    require_cgroup2()
    mode: str = request.param
    return mode


async def host_ready(init: LocalInit, mode: str = "auto") -> None:
    """Wait until the init's agent host is ready (before that, actions are started as processes of their own)."""
    if mode == "auto":
        await wait_until(lambda: init._rt.host is not None and init._rt.host.ready, what="the agent host")


def _read(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_an_action_is_made_as_a_started_one_is(tmp_path: Path, host_mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "held"
    cltab = f"g:res:run:respawn:@probe {marker}\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV, agent_host=host_mode) as (init, _records):
            await host_ready(init, host_mode)
            monkeypatch.chdir(tmp_path)  # the daemon's working directory now, not the one the host started in
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until(marker.exists, what="the probe to acquire")
            me = _read(marker)
            host = init.agent_host_pid
            entry = init.status()["g"]["entries"]["res"]
            assert me["pid"] == entry["pid"]
            if host_mode == "auto":
                assert host is not None and me["ppid"] == host  # forked by the host: no Python start
                assert me["comm"] == "@probe respawn"  # what ps -e and top show
            else:
                assert host is None and me["ppid"] == os.getpid()
            assert me["sid"] == me["pgid"] == me["pid"]  # a session and a process group of its own
            assert me["cgroup"].endswith(".g.res")  # its own cell, not the host's
            fds = me["fds"]
            assert fds["0"] == "/dev/null" and fds["1"] == fds["2"] and fds["1"].startswith("pipe:")
            if host_mode == "auto":
                assert sorted(fds) == ["0", "1", "2"]  # nothing of the host's (its socket, other pidfds) leaks
            assert me["sigblk"] == 0
            assert me["cwd"] == str(tmp_path)
            assert me["sigign"] & ~IGNORED_ANYWAY == 0, hex(me["sigign"])
            assert me["env"]["OMHA_GROUP"] == "g" and me["env"]["OMHA_TAG"] == "res"
            assert me["env"]["OMHA_LEVEL"] == "run"
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not marker.exists()  # SIGTERM made the monitor release

    run(scenario())


def test_exit_statuses_reach_the_init(tmp_path: Path, host_mode: str) -> None:
    cltab = (
        f"ok:t1:run:test:@probe {tmp_path}/x\n"
        f"bad:t2:run:test:@probe {tmp_path}/missing/x\n"  # check fails: exit 1
        "usage:t3:run:test:@probe relative\n"  # invalid arguments: exit 2
    )

    async def scenario() -> None:
        async with running_init(cltab, env=ENV, agent_host=host_mode) as (init, _records):
            await host_ready(init, host_mode)
            for group in ("ok", "bad", "usage"):
                init.tell(group, "run")
            assert await init.wait_settled("ok", 30) == PASSED
            assert await init.wait_settled("bad", 30) == FAILED
            assert await init.wait_settled("usage", 30) == FAILED
            status = init.status()
            assert status["ok"]["entries"]["t1"]["exit"] == 0
            assert status["bad"]["entries"]["t2"]["exit"] == 1
            assert status["usage"]["entries"]["t3"]["exit"] == 2

    run(scenario())


def test_an_action_past_agent_timeout_is_killed(tmp_path: Path, host_mode: str) -> None:
    marker = tmp_path / "held"
    cltab = f"g:slow:run:wait:@probe {marker} sleep=300\ng:after:run:once:touch {tmp_path}/after\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV, agent_host=host_mode, agent_timeout=2) as (init, records):
            await host_ready(init, host_mode)
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == FAILED
            assert records.has("g/slow: acquire did not finish within agent_timeout (2s); killing it")
            entry = init.status()["g"]["entries"]["slow"]
            # SIGTERM reached the agent itself, which says so and exits 1 (an acquire cut short is never "done")
            assert entry["state"] == "failed" and entry["exit"] == 1
            assert records.has(f"g/slow: @probe {marker} sleep=300: acquire interrupted by a signal")
            assert not (tmp_path / "after").exists()

    run(scenario())


def test_a_killed_host_costs_no_action(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_cgroup2()
    monkeypatch.setattr(host_module, "RESTART_DELAY", 0.0)
    marker = tmp_path / "held"
    cltab = f"g:res:run:respawn:@probe {marker}\nh:once:run:wait:@probe {tmp_path}/h\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV) as (init, records):
            await host_ready(init)
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            await wait_until(marker.exists, what="the probe to acquire")
            host = init.agent_host_pid
            first = _read(marker)
            assert host is not None and first["ppid"] == host
            os.kill(host, signal.SIGKILL)
            await wait_until(lambda: init.agent_host_pid is None, what="the init to see the host gone")
            assert records.has("agent host: the agent host")
            # the monitor forked by the dead host still runs, in its cell, supervised by its pidfd
            assert os.path.exists(f"/proc/{first['pid']}")
            # an action asked for now is started as a process of its own (the host restarts later)
            init.tell("h", "run")
            assert await init.wait_settled("h", 30) == DONE
            assert _read(tmp_path / "h")["ppid"] == os.getpid()
            # the orphaned monitor's exit is still noticed; its status is lost with the host, so it counts as a
            # failure (255) and the respawn entry starts it again
            marker.unlink()
            await wait_until(
                lambda: marker.exists() and _read(marker)["pid"] != first["pid"], what="the monitor to be respawned"
            )
            assert records.has(f"g/res: pid {first['pid']} exited, but the agent host is gone: exit status unknown")
            # that start began a new host; once ready, it forks the next action
            await host_ready(init)
            assert init.agent_host_pid not in (None, host)
            init.tell("h", "stop")
            assert await init.wait_settled("h", 30) == DONE
            init.tell("h", "run")
            assert await init.wait_settled("h", 30) == DONE
            assert _read(tmp_path / "h")["ppid"] == init.agent_host_pid
            init.tell("g", "stop")
            assert await init.wait_settled("g", 30) == DONE
            assert not marker.exists()

    run(scenario())


def test_the_host_is_started_only_for_a_cltab_with_agents(tmp_path: Path) -> None:
    require_cgroup2()

    async def scenario() -> None:
        async with running_init("g:s:run:once:true\n", env=ENV) as (init, _records):
            assert init.agent_host_pid is None
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            assert init.agent_host_pid is None
        async with running_init(f"g:a:run:wait:@probe {tmp_path}/a\n", env=ENV) as (init, _records):
            assert init.agent_host_pid is not None
        async with running_init(f"g:a:run:wait:@probe {tmp_path}/a\n", env=ENV, cgroup="off") as (init, _records):
            assert init.agent_host_pid is None  # markers: a fork cannot carry one (/proc/PID/environ)

    run(scenario())


def test_the_host_has_no_python_start_per_action() -> None:
    """The host's imports are done once: a forked action imports nothing of omha or the agent again."""
    import subprocess

    code = (
        "import sys, omha_core.agent_host as h, os\n"
        f"os.environ['OMHA_AGENT_CLASSES'] = {probe_agent.CLASSES!r}\n"
        "h.preload()\n"
        "print('tests.core.probe_agent' in sys.modules, 'tomllib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_a_stuck_host_is_given_up_on_and_the_action_started(tmp_path: Path) -> None:
    require_cgroup2()
    cltab = f"g:a:run:wait:@probe {tmp_path}/a\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV) as (init, records):
            await host_ready(init)
            host = init.agent_host_pid
            assert host is not None
            os.kill(host, signal.SIGSTOP)
            init.tell("g", "run")  # the init waits up to ANSWER_TIMEOUT for the host, then starts the action itself
            assert await init.wait_settled("g", 30) == DONE
            assert records.has("agent host: the agent host did not answer within 1 s")
            assert _read(tmp_path / "a")["ppid"] == os.getpid()
            await wait_until(lambda: not os.path.exists(f"/proc/{host}"), what="the stuck host to be killed")

    run(scenario())


def test_an_action_asked_before_the_host_is_ready_is_started(tmp_path: Path) -> None:
    require_cgroup2()
    cltab = f"g:a:run:wait:@probe {tmp_path}/a\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV) as (init, _records):
            assert init.agent_host_pid is not None
            init.tell("g", "run")  # the loop has not run since the start: the host cannot have said it is ready
            assert await init.wait_settled("g", 30) == DONE
            assert _read(tmp_path / "a")["ppid"] == os.getpid()

    run(scenario())


def test_a_host_socket_above_fd_setsize_still_works(tmp_path: Path) -> None:
    """A daemon holding many entries has descriptors above 1024, where select() cannot wait (it raised, and every
    action was started instead)."""
    require_cgroup2()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2048 if hard == resource.RLIM_INFINITY else min(2048, hard)
    if wanted < 1200:
        pytest.skip(f"the open-files limit ({hard}) is too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # the host's socket comes above them
    cltab = f"g:a:run:wait:@probe {tmp_path}/a\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV) as (init, records):
            await host_ready(init)
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            assert _read(tmp_path / "a")["ppid"] == init.agent_host_pid, records.messages

    try:
        run(scenario())
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_exit_status_is_handed_over_in_a_callback_of_its_own() -> None:
    """An exit read while a fork waits for its answer must not run the waiter there: the waiter's entry may ask
    for its next action at once, and that fork would read the first one's answer as its own."""
    import socket as socket_module

    from omha_core.init.host import Link

    async def scenario() -> None:
        ours, theirs = socket_module.socketpair(socket_module.AF_UNIX, socket_module.SOCK_SEQPACKET)
        try:
            link = Link(ours)
            got: list[int | None] = []
            link.wait_status(42, got.append)
            link.received({"exit": 42, "status": 7})
            assert got == []  # not from inside the reading
            await asyncio.sleep(0)
            assert got == [7]
            link.wait_status(43, got.append)
            asyncio.get_running_loop().add_reader(ours.fileno(), lambda: None)
            link.close()
            assert got == [7]
            await asyncio.sleep(0)
            assert got == [7, None]  # the host is gone: the status is lost, and said to be
        finally:
            theirs.close()

    run(scenario())


def test_a_host_whose_agents_started_a_thread_does_not_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking a process with threads copies one thread and every lock the others held; the host refuses, says
    why, and is not started again: every action is started as before."""
    require_cgroup2()
    monkeypatch.setattr(host_module, "RESTART_DELAY", 0.0)
    # named, not imported: importing it here would start its thread in the test process
    env = {**ENV, "OMHA_AGENT_CLASSES": "threaded=tests.core.threaded_agent:ThreadedAgent"}
    cltab = f"g:a:run:wait:@threaded {tmp_path}/a\n"

    async def scenario() -> None:
        async with running_init(cltab, env=env) as (init, records):
            why = "agent host: importing the agents started threads ['poller']: not forking"
            await wait_until(lambda: records.has(why), what="the host to refuse")
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            assert _read(tmp_path / "a")["ppid"] == os.getpid()
            assert init.agent_host_pid is None  # not started again

    run(scenario())


def test_a_finished_action_keeps_its_number_until_the_init_has_handled_it(tmp_path: Path) -> None:
    """The host reports an exit but reaps the child only when the init says so: until then the pid stays taken (a
    zombie), as a child the init starts itself stays until the init reaps it, so the init never signals a
    number that was reused meanwhile. The protocol, spoken to a real host."""
    import socket as socket_module
    import subprocess

    from omha_core.init.cgroups import cgroup2_parent

    require_cgroup2()
    parent, _ = cgroup2_parent()
    ours, theirs = socket_module.socketpair(socket_module.AF_UNIX, socket_module.SOCK_SEQPACKET)
    env = {**os.environ, **ENV}
    host = subprocess.Popen([sys.executable, "-m", "omha_core.agent_host"], stdin=theirs.fileno(), env=env, cwd=ROOT)
    theirs.close()
    ours.settimeout(30)
    r, w = os.pipe()

    def fork(*argv: str) -> int:
        request = {"argv": list(argv), "env": env, "procs": f"{parent}/cgroup.procs", "cwd": str(tmp_path)}
        socket_module.send_fds(ours, [json.dumps(request).encode()], [w])
        data, fds, _flags, _addr = socket_module.recv_fds(ours, 65536, 1)
        for fd in fds:
            os.close(fd)
        pid: int = json.loads(data)["pid"]
        return pid

    def state(pid: int) -> str:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return "gone"

    try:
        assert json.loads(ours.recv(65536)) == {"ready": True}
        done = fork("probe", "check", f"{tmp_path}/x")  # exits 0 at once
        assert json.loads(ours.recv(65536)) == {"exit": done, "status": 0}
        failed = fork("probe", "check", f"{tmp_path}/missing/x")  # exits 1
        assert json.loads(ours.recv(65536)) == {"exit": failed, "status": 1 << 8}
        killed = fork("probe", "acquire", f"{tmp_path}/held sleep=60")
        os.kill(killed, signal.SIGKILL)
        assert json.loads(ours.recv(65536)) == {"exit": killed, "status": signal.SIGKILL}
        time.sleep(0.2)
        assert [state(p) for p in (done, failed, killed)] == ["Z", "Z", "Z"]  # reported, not yet reaped
        for pid in (done, failed, killed):
            ours.send(json.dumps({"reap": pid}).encode())
        deadline = time.monotonic() + 10
        while any(state(p) != "gone" for p in (done, failed, killed)):
            assert time.monotonic() < deadline, "the host did not reap them when told"
            time.sleep(0.01)
    finally:
        ours.close()  # the host exits on that
        try:
            host.wait(10)
        finally:
            if host.poll() is None:
                host.kill()
                host.wait()
            os.close(r)
            os.close(w)


def test_a_removed_working_directory_does_not_cost_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon whose working directory was removed cannot name it (``getcwd`` fails): the init must still ask the
    host (it raised, and every action was started instead), and the action runs where the host does."""
    require_cgroup2()
    gone = tmp_path / "gone"
    gone.mkdir()
    cltab = f"g:a:run:wait:@probe {tmp_path}/a\n"

    async def scenario() -> None:
        async with running_init(cltab, env=ENV) as (init, records):
            await host_ready(init)
            where_the_host_started = os.getcwd()
            monkeypatch.chdir(gone)
            gone.rmdir()
            init.tell("g", "run")
            assert await init.wait_settled("g", 30) == DONE
            me = _read(tmp_path / "a")
            assert me["ppid"] == init.agent_host_pid, records.messages
            assert me["cwd"] == where_the_host_started  # the host's

    run(scenario())


def test_the_host_says_no_cgroup_as_the_init_shell_does() -> None:
    """The host keeps its own copy of the exit status (importing the init's module would load the whole init)."""
    from omha_core import agent_host
    from omha_core.init import cgroups

    assert agent_host.EXIT_NO_CGROUP == cgroups.EXIT_NO_CGROUP
