"""False failovers under load: five daemons at omha's default timings while ``stress-ng`` saturates the CPUs and
the disk, with no fault injected. Any group moving, any node declared lost, any fence is a false failover.

    python bench/bench_stall.py [--duration 600] [--nodes 5] [--groups 4] [--stress "--cpu 2 --io 2 --hdd 1"]
                                [--timing dead_after=1.5]

A watcher (this process) polls every node's published status every 50 ms and records the heartbeat gaps: the
wall time between two successive publications (``time`` in the status, written by the daemon). Only a gap
between two publications whose ``seq`` differ by one is a gap the daemon made; when the watcher itself was held
up long enough to miss a publication (``seq`` jumped), the interval is counted apart ("unobserved"), with the
longest such span, since it would otherwise pass for a daemon stall. It also keeps the longest silence of a
peer each daemon published (its own view, which ``dead_after`` is compared with: the gap plus the observer's
phase). ``--timing`` measures a candidate default instead of omha's. At the end each daemon's log is searched
for the signs of a failover: "lost while holding", "fencing", "fenced", "moved from", "stopping every local
group", "claim lost". Exits 1 when a false failover was seen.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omha_core.localcluster import LocalCluster, fence_device

#: log lines that mean the cluster took action against a node or moved a group
FAILOVER_SIGNS = re.compile(
    r"lost while holding|: fencing|fenced by|moved from|stopping every local group|claim lost|stopping here"
)


def read_status(shared: Path, node: str) -> dict[str, object] | None:
    try:
        return dict(json.loads((shared / "nodes" / node / "status.json").read_text()))
    except (OSError, ValueError):
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def parse_timing(text: str) -> dict[str, float]:
    """``'dead_after=1.2,heartbeat=0.4'`` -> ``{"dead_after": 1.2, "heartbeat": 0.4}``."""
    pairs = [item.split("=", 1) for item in text.split(",") if item]
    if any(len(p) != 2 for p in pairs):
        raise SystemExit(f"--timing {text!r}: expected key=seconds[,key=seconds...]")
    return {k.strip(): float(v) for k, v in pairs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=float(os.environ.get("DURATION", 600)))
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--stress", default="--cpu 2 --io 2 --hdd 1 --hdd-bytes 256M")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) for inspection")
    ap.add_argument(
        "--timing", default="", help="[timing] over the defaults: 'dead_after=1.2,heartbeat=0.4' (a candidate default)"
    )
    args = ap.parse_args()
    if not shutil.which("stress-ng"):  # a fresh machine: install it as `make test` installs its packages
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        subprocess.run([os.path.join(root, "scripts", "install-system-packages"), "stress-ng"], check=True)
    timing = {"heartbeat": 0.5, "dead_after": 2.0, "settle": 2.0}  # omha's defaults (LocalCluster's are faster)
    tmp = Path(tempfile.mkdtemp(prefix="omha-bench-stall-"))
    names = [f"n{i}" for i in range(1, args.nodes + 1)]
    groups = [f"g{i}" for i in range(1, args.groups + 1)]
    cluster = LocalCluster(
        tmp,
        names,
        cltab="".join(f"{g}:{g}srv:run:respawn:exec sleep 100000\n" for g in groups),
        hactl="".join(f"{g} run\n" for g in groups),
        config={"timing": {**timing, **parse_timing(args.timing)}, "fencing": {"action": "off"}},
        devices=[fence_device(tmp, names)],
    )
    stress: subprocess.Popen[bytes] | None = None
    gaps: dict[str, list[float]] = {n: [] for n in names}
    #: (span, publications) where the watcher missed at least one publication
    unobserved: list[tuple[float, int]] = []
    #: (observer, peer) -> the longest silence of peer the observer published (what dead_after is compared with)
    silence: dict[tuple[str, str], float] = {}
    try:
        cluster.start()
        deadline = time.monotonic() + 60
        placement: dict[str, str] = {}
        while time.monotonic() < deadline and len(placement) < len(groups):
            placement = {g: r[0] for g in groups if len(r := cluster.running(g)) == 1}
            time.sleep(0.2)
        if len(placement) < len(groups):
            print(cluster.diagnostics())
            raise SystemExit("the groups did not all start within 60 s")
        print(f"placement before load: {placement}", flush=True)
        marks = {n: len(cluster.log(n)) for n in names}  # failover signs are counted from here on
        stress_dir = tmp / "stress"
        stress_dir.mkdir()
        cmd = ["stress-ng", *shlex.split(args.stress), "--temp-path", str(stress_dir)]
        cmd += ["--timeout", f"{args.duration:g}s"]
        print("load:", " ".join(cmd), flush=True)
        stress = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        last: dict[str, tuple[int, float]] = {}
        moves: list[str] = []
        end = time.monotonic() + args.duration
        next_check = 0.0
        while time.monotonic() < end:
            for n in names:
                st = read_status(cluster.shared, n)
                if not st:
                    continue
                seq, when = int(st.get("seq", 0)), float(st.get("time", 0.0))  # type: ignore[call-overload, arg-type]
                view = st.get("view")
                for peer, seen in (view.get("nodes", {}) if isinstance(view, dict) else {}).items():
                    if peer != n and isinstance(seen, dict) and isinstance(seen.get("silent"), (int, float)):
                        silence[(n, peer)] = max(silence.get((n, peer), 0.0), float(seen["silent"]))
                if n in last and seq == last[n][0] + 1:
                    gaps[n].append(when - last[n][1])
                elif n in last and seq > last[n][0]:
                    unobserved.append((when - last[n][1], seq - last[n][0]))
                if n not in last or seq != last[n][0]:
                    last[n] = (seq, when)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + 2.0
                for g in groups:
                    now_on = cluster.running(g)
                    if len(now_on) == 1 and now_on[0] != placement[g]:
                        moves.append(f"{g}: {placement[g]} -> {now_on[0]}")
                        print(f"MOVE {moves[-1]}", flush=True)
                        placement[g] = now_on[0]
            time.sleep(0.05)
    finally:
        if stress is not None and stress.poll() is None:
            os.killpg(stress.pid, signal.SIGTERM)
            try:
                stress.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(stress.pid, signal.SIGKILL)
                stress.wait()
        signs = {}
        for n in names:
            text = cluster.log(n)[marks[n] :] if "marks" in locals() else ""
            signs[n] = [ln for ln in text.splitlines() if FAILOVER_SIGNS.search(ln)]
        cluster.stop()
        if args.keep:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    every = [g for n in names for g in gaps[n]]
    false = sum(len(v) for v in signs.values())
    shown = f"timing {args.timing}" if args.timing else "default timings"
    print(f"\n{args.nodes} daemons, {args.groups} groups, {shown}, {args.duration:g} s under: {args.stress}")
    print(f"group moves seen: {len(moves)} {moves}")
    print(f"failover signs in the logs: {false}")
    for lines in signs.values():
        for ln in lines:
            print(f"  {ln}")
    if every:
        print(
            f"heartbeat gaps ({len(every)} publications): median {statistics.median(every):.2f} s, "
            f"p99 {percentile(every, 0.99):.2f} s, p99.9 {percentile(every, 0.999):.2f} s, max {max(every):.2f} s"
        )
        for n in names:
            if gaps[n]:
                print(f"  {n}: max {max(gaps[n]):.2f} s, p99 {percentile(gaps[n], 0.99):.2f} s")
    if silence:
        (observer, peer), longest = max(silence.items(), key=lambda kv: kv[1])
        print(
            f"longest silence a daemon published of a peer: {longest:.1f} s ({observer} of {peer}; published each"
            f" cycle, to 0.1 s) against dead_after {cluster.sections['timing']['dead_after']:g} s"
        )
    if unobserved:
        span, steps = max(unobserved)
        print(
            f"intervals the watcher missed a publication in: {len(unobserved)}, the longest {span:.2f} s over"
            f" {steps} publications (not counted above)"
        )
    return 1 if moves or false else 0


if __name__ == "__main__":
    sys.exit(main())
