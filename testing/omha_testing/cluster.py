"""Multi-node test support: the local cluster plus the safety checker.

:func:`guarded` wraps a group's run-level command so that it holds an exclusive ``flock`` on a per-group lock
file while it runs, logging ``start``/``OVERLAP`` lines; :meth:`Cluster.assert_no_overlap` fails the test if two
nodes ever ran the group at once.
"""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

from omha_core.localcluster import LocalCluster


def guarded(cluster_dir: Path, group: str, command: str = "sleep 100000", stamp: bool = False) -> str:
    """A cltab command that runs ``command`` holding the group's safety lock, recording who ran it (``start NODE
    PID``, or ``OVERLAP NODE PID`` when another instance held the lock; with ``stamp``, each line also carries
    the wall-clock time, ``start NODE PID EPOCH``).

    The (empty) safety log is created now: its existence marks the group as guarded, so that
    :meth:`Cluster.running` waits for the log line of a start even before the first one."""
    lock = cluster_dir / "safety" / f"{group}.lock"
    log = cluster_dir / "safety" / f"{group}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    who = "$OMHA_NODE $$ $(date +%s.%N)" if stamp else "$OMHA_NODE $$"
    inner = (
        f'exec 9>>{lock}; if flock -n 9; then echo "start {who}" >> {log}; exec {command}; '
        f'else echo "OVERLAP {who}" >> {log}; exit 1; fi'
    )
    return f"sh -c {shlex.quote(inner)}"


def web_cltab(tmp: Path) -> str:
    """The cltab most multi-node tests use: one group ``web`` whose server holds the safety lock."""
    return f"web:srv:run:respawn:{guarded(tmp, 'web')}\n"


class Cluster(LocalCluster):
    """A local cluster with the safety checker's helpers."""

    def close(self) -> None:
        """End of a test: thaw frozen daemons, stop everything, then check that no group ever overlapped."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
        self.stop()
        self.assert_no_overlap()

    def running(self, group: str) -> list[str]:
        """As published (see :meth:`LocalCluster.running`), and for a guarded group only once the node's start
        is in the safety log: a respawn entry is DONE as soon as it is spawned, a moment before its shell logs
        "start", and a test that read the log right away would see one start too few."""
        return [n for n in super().running(group) if self.started_last_on(group, n)]

    def started_last_on(self, group: str, node: str) -> bool:
        """True when ``group`` is not guarded or its latest logged start is on ``node``."""
        path = self.tmp / "safety" / f"{group}.log"
        if not path.exists():
            return True
        starts = [ln.split()[1] for ln in self.safety_log(group) if ln.startswith("start")]
        return bool(starts) and starts[-1] == node

    def safety_log(self, group: str) -> list[str]:
        path = self.tmp / "safety" / f"{group}.log"
        return path.read_text().splitlines() if path.exists() else []

    def assert_no_overlap(self) -> None:
        """No run-level command ever found its group's lock held by another node."""
        for log in (self.tmp / "safety").glob("*.log"):
            bad = [line for line in log.read_text().splitlines() if line.startswith("OVERLAP")]
            assert not bad, f"{log.stem} ran on two nodes at once: {bad}"
