"""Pacemaker's sample alert agent receives omha's events from real daemons: a node freezes, is lost, is fenced
by a survivor, and the group starts there; one recipient file, appended to by every node's alerts."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow

SAMPLE = Path("/usr/share/pacemaker/alerts/alert_file.sh.sample")


def test_node_lost_fencing_and_takeover_reach_the_alert_file(tmp_path: Path) -> None:
    require_commands("flock")
    if not SAMPLE.exists():
        pytest.skip(f"needs {SAMPLE} (pacemaker-common; installed by 'make test' as root)")
    agent = tmp_path / "alert_file.sh"
    shutil.copy(SAMPLE, agent)
    agent.chmod(0o755)
    log = tmp_path / "alerts.log"
    c = Cluster(
        tmp_path,
        2,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        config={"quorum": {"policy": "ignore"}, "fencing": {"action": "off"}},
        devices=[fence_device(tmp_path, ["n1", "n2"])],
    )
    for name in c.names:  # [[alerts]] is an array of tables, which the local cluster's sections cannot say
        path = c.config_path(name)
        path.write_text(path.read_text() + f'[[alerts]]\npath = "{agent}"\nrecipient = "{log}"\ntimeout = 10\n')
    try:
        c.start()
        holder = c.wait_running("web", 30)
        other = next(n for n in c.names if n != holder)
        c.wait_for("the start alert", lambda: log.exists() and f"for 'web' on '{holder}': ok" in log.read_text())
        c.kill(holder, signal.SIGSTOP)  # frozen: only fencing makes the takeover safe
        assert c.wait_running("web", 30, exclude=(holder,)) == other
        wanted = (
            f"Node '{holder}' is now 'lost'",
            f"Fencing Operation off of {holder} by {other} for omha@{other}: OK (device localkill)",
            f"Resource operation 'start' for 'web' on '{other}': ok",
        )
        c.wait_for("the failover's alerts", lambda: all(w in log.read_text() for w in wanted))
        lines = [line.split(": ", 1)[1] for line in log.read_text().splitlines()]
        # in the order they happened, each line once: lost, fenced, then started on the survivor
        assert [lines.index(w) for w in wanted] == sorted(lines.index(w) for w in wanted)
        assert sum(w in line for line in lines for w in wanted) == len(wanted)
        c.omha(other, "shutdown", "--wait")
        c.wait_for("the stop alert", lambda: f"Resource operation 'stop' for 'web' on '{other}': ok" in log.read_text())
    finally:
        c.close()
