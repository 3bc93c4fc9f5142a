"""The short fault campaign ``make test`` runs: fixed seeds, one random seed (printed), and a check of the checker.

Each campaign is a 5-node cluster of real daemons with three guarded groups, a real fence device (the node's
processes are all killed before it reports success) and the default fault mix (crashes, freezes past
``dead_after``, group process deaths, group flips, graceful restarts, fence devices failing or hanging while
their node is down, cltab/hactl edits valid and invalid, a full state_dir, a site plugin whose hooks raise, nodes
restarted with their wall clock jumped; on
etcd also etcd member and leader kills; the random seed also runs a ``@mount`` group and fills shared directories).
``make chaos`` runs long ones.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omha_core.cltab import parse_cltab
from omha_core.errors import ParseError
from omha_core.hactl import parse_hactl
from tests.chaos import nemesis
from tests.chaos.checker import Report, check
from tests.chaos.harness import BAD_CLTAB, BAD_HACTL, Campaign, Options
from tests.chaos.run import campaign

pytestmark = pytest.mark.slow
#: seconds of faults in each short campaign
SHORT = 25.0


def verdict(rep: Report) -> str:
    return rep.summary() + "".join(f"\n--- {v.claim}: {v.what}\n{rep.around(v.at)}" for v in rep.violations)


def test_campaign_fixed_seed_with_a_vip(tmp_path: Path) -> None:
    """Seed 1823's 25 s draw 7 of the 13 sharedfs kinds (a fence failure, a raising plugin and a clock jump among
    them), on nodes in network namespaces with a group holding a VIP: never on two nodes, never left behind."""
    rep = campaign(tmp_path, 1823, SHORT, vip=True)
    assert {"crash", "freeze", "fence_fail", "plugin_raise", "edit", "clock_jump"} <= set(rep.faults)
    assert "gv" in rep.availability
    assert not rep.violations, verdict(rep)


def test_campaign_etcd_with_member_and_leader_kills(tmp_path: Path) -> None:
    """Seed 242's schedule on etcd kills an etcd member and the etcd leader, and jumps a node's clock 162 s back,
    besides the nodes' faults."""
    rep = campaign(tmp_path, 242, SHORT, store="etcd")
    assert rep.faults["etcd_kill"] and rep.faults["etcd_leader_kill"] and rep.faults["clock_jump"]
    assert not rep.violations, verdict(rep)


def test_campaign_random_seed(tmp_path: Path) -> None:
    """A random seed, with a ``@mount`` group on a loop device (``--mount``) and full shared directories
    (``store_full``) in the mix."""
    seed = random.SystemRandom().randrange(1, 2**31)
    print(f"chaos random seed: {seed}")
    rep = campaign(tmp_path, seed, SHORT, mount=True, add=["store_full"])
    assert "gm" in rep.availability
    assert not rep.violations, f"random seed {seed}:\n{verdict(rep)}"


def test_campaign_with_clock_jumps(tmp_path: Path) -> None:
    """Seed 4's 15 s of clock jumps and group flips: nodes restarted with their wall clock 30 s ahead, 95 s and
    152 s behind (libfaketime, the monotonic clock kept true by the monofix shim), then with the true time again.
    Every jump takes (a process started like the daemon sees the offset) and every claim holds across them."""
    from tests.chaos import clock

    if clock.missing():
        pytest.skip(clock.missing())
    rep = campaign(tmp_path / "run", 4, 15.0, kinds=["clock_jump", "flip"])
    assert rep.faults["clock_jump"] == 3 and not rep.skipped.get("clock_jump"), rep.summary()
    assert rep.jumps == 3
    events = [json.loads(line) for line in (tmp_path / "run" / "chaos" / "nemesis.log").read_text().splitlines()]
    jumps = [e for e in events if e["ev"] == "clock_jump"]
    assert [e["offset"] for e in jumps] == ["+30s", "-95s", "-152s"]
    for e in jumps:
        assert e["skew"] is not None and abs(e["skew"] - int(e["offset"][:-1])) < 5.0, e
    assert len([e for e in events if e["ev"] == "clock_back"]) == 3
    assert not rep.violations, verdict(rep)


def test_schedule_is_a_function_of_the_seed() -> None:
    nodes, groups = ["n1", "n2", "n3", "n4", "n5"], ["g1", "g2"]
    one = nemesis.draw(5, 300, nodes, groups, 1.5)  # seed 5: every kind of the default mix (7 lacks clock_jump)
    assert one == nemesis.draw(5, 300, nodes, groups, 1.5)
    assert one != nemesis.draw(6, 300, nodes, groups, 1.5)
    assert {f.kind for f in one} == set(nemesis.DEFAULT_WEIGHTS)
    # never more than a minority impaired at once, so every fault is one the cluster must survive
    for f in one:
        impaired = {
            g.node for g in one
            if g.kind in nemesis.IMPAIRING and g.at <= f.at < g.at + g.duration + nemesis.REJOIN_MARGIN
        }
        assert len(impaired) <= 2


def test_checker_catches_a_fence_that_lies(tmp_path: Path) -> None:
    """A device that reports success without powering the node off: the frozen node's group keeps running while
    another node starts it, and the checker must say so (the kernel lock catches the second instance)."""
    run = Campaign(tmp_path, Options(seed=0, duration=0.0, nodes=3, groups=1))
    run.start_cluster()
    try:
        assert run.wait("g1 running", run.all_once, 60, stable=0.5)
        [(victim, _pid)] = run.live_instances()["g1"]
        for node in run.names:
            (run.logdir / f"fence-fault.{node}").write_text("lie")
        run.log("faults_begin")
        run.inject(nemesis.Fault(0.0, "freeze", node=victim, duration=1.0))
        assert run.wait("a takeover attempt", lambda: "overlap" in (run.logdir / "g1.events").read_text(), 30)
        assert run.cluster is not None
        run.cluster.procs[victim].send_signal(signal.SIGCONT)
        run.frozen.discard(victim)
        run.log("faults_end")
        run.log("end")
    finally:
        run.shutdown()
    claims = {v.claim for v in check(tmp_path).violations}
    assert {"overlap", "left-behind"} <= claims


def test_checker_catches_a_mount_on_two_nodes(tmp_path: Path) -> None:
    """``--mount``: with a fence device that lies, a frozen node keeps the ``@mount`` group's loop device mounted
    in its mount namespace while another node mounts it too; the mount sampler sees both and the checker must
    say so (a duplicate mount, and a mount left on a node after its "fence")."""
    run = Campaign(tmp_path, Options(seed=0, duration=0.0, nodes=3, groups=0, mount=True))
    try:
        run.start_cluster()
        assert run.wait("gm running", run.all_once, 60, stable=0.5)
        [(victim, _pid)] = run.live_instances()["gm"]
        for node in run.names:
            (run.logdir / f"fence-fault.{node}").write_text("lie")
        run.log("faults_begin")
        run.inject(nemesis.Fault(0.0, "freeze", node=victim, duration=1.0))

        def mounted_twice() -> bool:
            return any(e.startswith('{"ev": "mount"') and len(json.loads(e)["holders"]) > 1
                       for e in (run.logdir / "nemesis.log").read_text().splitlines())

        assert run.wait("a second mount", mounted_twice, 30)
        assert run.cluster is not None
        run.cluster.procs[victim].send_signal(signal.SIGCONT)
        run.frozen.discard(victim)
        run.log("faults_end")
        run.log("end")
    finally:
        run.shutdown()
    claims = {v.claim for v in check(tmp_path).violations}
    assert {"mount-duplicate", "left-behind"} <= claims


def test_the_edit_faults_bad_files_are_invalid() -> None:
    """The ``edit`` fault's "invalid" cltab and hactl lines must really be refused by omha's parsers, or the
    campaign reports an invalid file accepted where omha only accepted a valid one."""
    with pytest.raises(ParseError):
        parse_cltab(BAD_CLTAB)
    with pytest.raises(ParseError):
        parse_hactl("g1 run\n" + BAD_HACTL)


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes whose command line mentions ``text`` (a campaign's directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as fh:
                zombie = fh.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if text in cmdline and not zombie and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


def _default_signals() -> None:
    """In the campaign's child, before exec: the signals under test at their default disposition. A campaign
    keeps an inherited SIG_IGN (`nohup make chaos` must survive a closed terminal), so a test run under
    `nohup` would otherwise send a SIGHUP that the campaign rightly ignores."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_campaign_stopped_by_a_signal_leaves_nothing_running(tmp_path: Path, signum: int) -> None:
    """``make chaos`` ended by SIGTERM (a CI time-out) or SIGHUP (a closed terminal) mid-schedule: it exits 130
    after stopping every daemon, guard and group process it started, instead of dying and leaving five daemons
    and their groups running."""
    base = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos", "--duration", "120", "--seed", "11", "--keep", str(base)],
        cwd=str(Path(__file__).resolve().parents[2]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_default_signals,  # as from a terminal, even when the tests run under `nohup`
    )
    try:
        log = base / "chaos" / "nemesis.log"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and '"faults_begin"' not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        assert _processes_mentioning(str(base)), "the campaign's daemons should be running by now"
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err.decode()
        assert "interrupted" in err.decode()
        assert not _processes_mentioning(str(base))
        assert not _mounts_under(base), "the campaign's state_dir mounts were left behind"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()  # else a later test's garbage collection reports it unclosed
        for line in _processes_mentioning(str(base)):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        for target in _mounts_under(base):
            subprocess.run(["umount", "-l", target], check=False)


def _mounts_under(base: Path) -> list[str]:
    with open("/proc/mounts") as fh:
        return [f.split()[1] for f in fh if f.split()[1].startswith(str(base) + "/")]
