"""Benchmark: a resource-agent action forked by the agent host against one started as ``python -m omha_core.agent``.

Two local inits run side by side in one event loop, one with ``[init] agent_host = "auto"`` (the default: actions
forked by the host) and one with ``"off"`` (each action a new Python process), both with every installed agent
named to their children as the daemon names them (``$OMHA_AGENT_CLASSES``). Each trial, interleaved: tell the
group ``run`` and time until it is DONE (the ``acquire`` ran and exited 0), then ``stop`` until it is DONE again
(the ``release``). Agents: ``@file`` (the action's own work well under a millisecond: what is left is what the
init adds) and, where resource-agents is installed, ``@ocf heartbeat:Dummy`` (a shell script's start and stop).

Reports medians and p90 in milliseconds, the ratio, the host's resident memory, and how many actions the init
started itself because the host failed it (each is logged as ``agent host: ...``; 0 expected). ``--stress``
runs it all while ``stress-ng --cpu 2 --io 2 --hdd 1`` saturates the CPUs and the disk (installed as
``make test`` installs its packages when missing), to see that the host keeps answering in time under load.

Usage: ``.venv/bin/python bench/bench_agent_host.py [--trials 30] [--stress]`` (as root: cgroup v2 cells are
needed)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_init_scale import rss_mb  # noqa: E402
from bench.bench_vs_keepalived import p90  # noqa: E402

DUMMY = "/usr/lib/ocf/resource.d/heartbeat/Dummy"
MODES = ("auto", "off")


async def run(trials: int, tmp: str) -> None:
    from omha_core.agent import CLASSES_ENV, classes_env
    from omha_core.cltab import parse_cltab
    from omha_core.init import DONE, LocalInit
    from omha_core.plugins import get_plugin_manager

    env = {CLASSES_ENV: classes_env(get_plugin_manager())}
    agents = {"file": f"@file {tmp}/marker-MODE"}
    if os.path.exists(DUMMY) and "ocf=" in env[CLASSES_ENV]:
        agents["ocf"] = f"@ocf heartbeat:Dummy state={tmp}/dummy-MODE.state"
    logger = logging.getLogger("bench")
    fallbacks = Fallbacks()
    logger.addHandler(fallbacks)
    logger.propagate = False
    inits: dict[str, LocalInit] = {}
    for mode in MODES:
        lines = "".join(f"{name}:{name}:run:wait:{cmd.replace('MODE', mode)}\n" for name, cmd in agents.items())
        init = LocalInit(parse_cltab(lines), options={"agent_host": mode}, logger=logger, env=env)
        await init.start()
        inits[mode] = init
    await asyncio.sleep(2.0)  # the host's own start-up (its imports) is not an action's
    times: dict[tuple[str, str, str], list[float]] = {}
    try:
        for _ in range(trials):
            for name in agents:
                for mode in MODES:
                    init = inits[mode]
                    for level, action in (("run", "acquire"), ("stop", "release")):
                        start = time.perf_counter()
                        init.tell(name, level)
                        state = await init.wait_settled(name, 60)
                        took = (time.perf_counter() - start) * 1000
                        if state != DONE:
                            raise SystemExit(f"{name} {mode} {action}: group {state}")
                        times.setdefault((name, action, mode), []).append(took)
        print("| agent | action | host (ms, median / p90) | started (ms, median / p90) | host / started |")
        print("| --- | --- | --- | --- | --- |")
        for name in agents:
            for action in ("acquire", "release"):
                hosted, started = times[(name, action, "auto")], times[(name, action, "off")]
                ratio = statistics.median(hosted) / statistics.median(started)
                print(
                    f"| @{name} | {action} | {statistics.median(hosted):.1f} / {p90(hosted):.1f} | "
                    f"{statistics.median(started):.1f} / {p90(started):.1f} | {ratio:.2f}x |"
                )
        host = inits["auto"].agent_host_pid
        memory = f"{rss_mb(host):.1f} MB" if host else "(no host running)"
        print(f"\nagent host RSS: {memory}; trials: {trials} per row, interleaved")
        print(f"actions started by the init because the host failed them: {fallbacks.count} {fallbacks.lines[:3]}")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        for init in inits.values():
            await init.shutdown()


class Fallbacks(logging.Handler):
    """Counts the init's warnings that the host failed an action (it then started the action itself)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("agent host:"):
            self.count += 1
            self.lines.append(message)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--stress", action="store_true", help="under stress-ng on both CPUs and the disk")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="omha-bench-host-") as tmp:
        stress = None
        if args.stress:
            if not shutil.which("stress-ng"):
                root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
                subprocess.run([os.path.join(root, "scripts", "install-system-packages"), "stress-ng"], check=True)
            cmd = ["stress-ng", "--cpu", "2", "--io", "2", "--hdd", "1", "--hdd-bytes", "256M", "--temp-path", tmp]
            stress = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(10)  # let the load build up
        try:
            asyncio.run(run(args.trials, tmp))
        finally:
            if stress is not None:
                os.killpg(stress.pid, signal.SIGTERM)
                stress.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
