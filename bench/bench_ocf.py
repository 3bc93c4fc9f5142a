"""Benchmark of ``@ocf`` / ``@lsb`` and of alert agents: what omha adds around the scripts it runs.

Scenarios, each repeated ``--reps`` times (median, min, max in milliseconds):

- ``ocf:heartbeat:Dummy start`` run directly by a shell-less ``subprocess.run`` with the OCF environment (the
  agent's own cost: sourcing ``ocf-shellfuncs``);
- the same through the plugin in-process (``OcfAgent.acquire``: start, then the probe monitor);
- acquire and release through ``python -m omha_core.agent ocf`` as the local init runs them (adds starting
  Python, loading the plugins and reading meta-data);
- one ``monitor`` in-process (what ``respawn`` pays every interval);
- an alert: from ``Alerts.emit`` to the line written by Pacemaker's ``alert_file.sh.sample`` (the background
  thread, a fresh environment, the sample's shell).

Usage: ``.venv/bin/python bench/bench_ocf.py [--reps 15]`` (needs resource-agents and pacemaker-common)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"
SAMPLE = Path("/usr/share/pacemaker/alerts/alert_file.sh.sample")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def report(label: str, values: list[float]) -> None:
    print(f"| {label} | {statistics.median(values):.1f} ms | {min(values):.1f} ms | {max(values):.1f} ms |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=15)
    reps = parser.parse_args().reps
    from omha_resource_ocf.ocf import OcfAgent

    from omha_core.alerts import Alert, Alerts

    with tempfile.TemporaryDirectory(prefix="omha-bench-ocf-") as tmp:
        state = f"{tmp}/dummy.state"
        args = f"heartbeat:Dummy state={state}"
        agent = OcfAgent.from_command(args)
        agent.validate()
        env = agent.environment("start", 20.0)

        def direct() -> None:
            subprocess.run([DUMMY, "start"], env=env, check=True, capture_output=True)
            subprocess.run([DUMMY, "stop"], env=env, check=True, capture_output=True)

        print("| figure | median | min | max |\n| --- | --- | --- | --- |")
        report("Dummy start + stop, run directly", [timed(direct) for _ in range(reps)])
        acquire, release, monitor = [], [], []
        for _ in range(reps):
            acquire.append(timed(agent.acquire))
            monitor.append(timed(agent.monitor))
            release.append(timed(agent.release))
        report("`OcfAgent.acquire` (start + probe monitor), in-process", acquire)
        report("`OcfAgent.release` (stop), in-process", release)
        report("`OcfAgent.monitor`, in-process", monitor)
        cmd = [sys.executable, "-m", "omha_core.agent", "ocf"]
        env_child = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
        child_acq, child_rel = [], []
        for _ in range(reps):
            child_acq.append(timed(lambda: subprocess.run([*cmd, "acquire", args], env=env_child, check=True)))
            child_rel.append(timed(lambda: subprocess.run([*cmd, "release", args], env=env_child, check=True)))
        report("`python -m omha_core.agent ocf acquire` (as the init runs it)", child_acq)
        report("`python -m omha_core.agent ocf release`", child_rel)

        agent_path = Path(tmp) / "alert_file.sh"
        shutil.copy(SAMPLE, agent_path)
        agent_path.chmod(0o755)
        log = Path(tmp) / "alerts.log"
        alerts = Alerts([Alert(str(agent_path), (str(log),), 10.0, frozenset({"node"}), "%H:%M:%S.%06N")], "n1")
        alerts.observe({"n1"}, {}, {})
        latency = []
        for i in range(reps):
            before = log.stat().st_size if log.exists() else 0
            start = time.perf_counter()
            alerts.observe({"n1", f"x{i}"} if i % 2 == 0 else {"n1"}, {}, {})
            while not log.exists() or log.stat().st_size == before:
                time.sleep(0.0005)
            latency.append((time.perf_counter() - start) * 1000)
        alerts.close()
        report("alert: `emit` to the line written by `alert_file.sh.sample`", latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
