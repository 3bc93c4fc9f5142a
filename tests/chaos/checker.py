"""The independent checker: reads what the groups, the fence device and the harness recorded, and judges it.

It never asks the daemons: the history is the groups' own (:mod:`tests.chaos.worker`), the fence device's own
(:mod:`tests.chaos.fence`), and the harness's record of the faults it injected (:mod:`tests.chaos.harness`).
All times are ``CLOCK_MONOTONIC`` readings, one clock for every process of the machine.

Claims checked (:func:`check`):

- ``overlap``: never two instances of a group at once: no worker found the group's kernel lock taken, and no two
  recorded lives ``[start, last sign of life]`` of a group intersect;
- ``unfenced-takeover``: a group running on a node when that node crashed or froze starts elsewhere only after a
  successful fence of that node (unless the harness powered the node on, thawed it or gave it its store back in
  between: it may then stop its groups and release them itself);
- ``left-behind``: no process of a node outlives its fence (past the fence's success), its daemon's graceful stop
  (past the daemon's exit), or its daemon's crash by more than :data:`GUARD_BOUND`; none is left at the end;
- ``healthy-fenced``: no node is fenced unless the nemesis impaired it (crashed, froze, or made its fence
  device fail while it was down) in the :data:`IMPAIRED_GRACE` seconds before; a plugin's exception, a full
  state_dir or an edit must not cost a node;
- ``vip-duplicate`` (with ``--vip``): never two nodes holding the VIP at once, as sampled; and ``left-behind``
  also covers the VIP: none on a node after its daemon's graceful stop, or :data:`GUARD_BOUND` after its crash;
- ``mount-duplicate`` (with ``--mount``): never two nodes with the ``@mount`` group's filesystem mounted at once,
  as sampled; ``left-behind`` also covers that mount: none on a node after its fence, its daemon's graceful stop
  or :data:`GUARD_BOUND` after its crash, and never in the host's own mount namespace;
- ``daemon-crash``: no daemon exits unless the harness or the fence device ended it; no traceback in any log;
- ``bad-input``: ``omha load`` refuses an invalid cltab or hactl, and accepts a valid one;
- ``recovery``: once the faults stop, every wanted group runs exactly once within the stated bound, and stays so.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.disk import HOST
from tests.chaos.harness import RECOVERY_BOUND
from tests.chaos.worker import TICK

#: seconds a crashed daemon's guard may take to end the node's groups (generous: the machine is shared)
GUARD_BOUND = 5.0
#: how long after an impairing fault ends a fence of that node still counts as caused by it
IMPAIRED_GRACE = 30.0
#: faults that take a node down, so that fencing it is expected
NODE_DOWN = ("crash", "freeze", "fence_fail", "fence_hang", "store_ro", "store_full", "netns_cut")
#: a line of a daemon's log that carries a group entry's output
CHILD_OUTPUT = re.compile(r" omha\.init INFO [\w.-]+/[\w.-]+: ")
#: seconds of timeline printed either side of a violation
WINDOW = 6.0


@dataclass
class Life:
    """One instance of a group, as its worker recorded it."""

    group: str
    node: str
    pid: int
    start: float
    end: float
    graceful: bool


@dataclass
class Violation:
    claim: str
    at: float
    what: str


@dataclass
class Report:
    seed: int
    t0: float
    violations: list[Violation] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    availability: dict[str, float] = field(default_factory=dict)
    recovery: dict[str, list[float]] = field(default_factory=dict)
    censored: Counter[str] = field(default_factory=Counter)
    settle: float | None = None
    fences: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[float, str]] = field(default_factory=list)
    starts: int = 0
    #: clock jumps performed (a node restarted with its wall clock offset), and the largest offset from the
    #: harness's wall clock that a group process on a jumped node recorded (seconds; shows the jump took)
    jumps: int = 0
    skew: float = 0.0

    def around(self, at: float) -> str:
        """The timeline within :data:`WINDOW` seconds of ``at`` (times relative to the first fault)."""
        return "\n".join(f"  {t - self.t0:9.3f}s {what}" for t, what in self.timeline if abs(t - at) <= WINDOW)

    def figures(self, store: str, duration: float) -> dict[str, Any]:
        """The run's figures as one JSON-able record (``--json``; bench/README.md sums them)."""
        return {
            "seed": self.seed,
            "store": store,
            "duration": duration,
            "faults": dict(self.faults),
            "skipped": dict(self.skipped),
            "fences": dict(self.fences),
            "starts": self.starts,
            "violations": [f"{v.claim}: {v.what}" for v in self.violations],
            "availability": self.availability,
            "recovery": self.recovery,
            "censored": dict(self.censored),
            "settle": self.settle,
            "jumps": self.jumps,
            "skew": round(self.skew, 1),
        }

    def summary(self) -> str:
        lines = [f"seed {self.seed}: {sum(self.faults.values())} faults injected "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(self.faults.items()))})"
                 + (f", skipped {dict(self.skipped)}" if self.skipped else "")]
        lines.append(f"  group starts {self.starts}, fences {dict(self.fences)}")
        if self.jumps:
            lines.append(f"  clock jumps {self.jumps}, group processes' wall clocks off by up to {self.skew:.0f} s")
        lines.append("  availability (wanted time with exactly one instance): "
                     + ", ".join(f"{g} {a:.4f}" for g, a in sorted(self.availability.items())))
        for kind in sorted(set(self.recovery) | set(self.censored)):
            values = self.recovery.get(kind, [])
            lines.append(f"  recovery after {kind:<16} n={len(values):<4} median {percentile(values, 50):6.2f} s"
                         f"  p99 {percentile(values, 99):6.2f} s"
                         + (f"  (+{self.censored[kind]} never recovered)"
                            if self.censored[kind] else ""))
        lines.append(f"  after the faults stopped, every group ran exactly once after "
                     f"{'never' if self.settle is None else f'{self.settle:.2f} s'} (bound {RECOVERY_BOUND:g} s)")
        lines.append(f"  violations: {len(self.violations)}")
        return "\n".join(lines)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a SIGKILL mid-write (never expected: one write per line)
    return out


def lives(logdir: Path, groups: list[str]) -> tuple[list[Life], list[dict[str, Any]]]:
    """Every recorded instance, and every ``overlap`` event (a worker that found the lock held)."""
    ticks: dict[tuple[str, str, int, str], float] = {}
    for path in (logdir / "alive").iterdir():
        group, node, pid, token = [*path.name.split("."), ""][:4]
        text = path.read_text().strip()
        if text:
            ticks[(group, node, int(pid), token)] = float(text)
    result, overlaps = [], []
    for group in groups:
        events = _lines(logdir / f"{group}.events")
        stop_list = [(e["pid"], e["mono"]) for e in events if e["ev"] == "stop"]
        overlaps += [e for e in events if e["ev"] == "overlap"]
        starts = [e for e in events if e["ev"] == "start"]
        for i, e in enumerate(starts):
            pid = e["pid"]
            # the next start with the same pid (a long campaign reuses pids): its stop and ticks are not ours
            reused = next((x["mono"] for x in starts[i + 1 :] if x["pid"] == pid), None)
            if reused is not None and "token" not in e:
                # records written before tokens: the ticks belong to the last of these; this one's end is unknown
                result.append(Life(group, e["node"], pid, e["mono"], e["mono"], False))
                continue
            horizon = float("inf") if reused is None else reused
            stopped = [t for p, t in stop_list if p == pid and e["mono"] <= t < horizon]
            tick = ticks.get((group, e["node"], pid, e.get("token", "")), e["mono"])
            end = min(stopped) if stopped else tick
            result.append(Life(group, e["node"], pid, e["mono"], max(end, e["mono"]), bool(stopped)))
    return sorted(result, key=lambda lf: lf.start), overlaps


def wanted_periods(
    events: list[dict[str, Any]], groups: list[str], t0: float, t_end: float
) -> dict[str, list[tuple[float, float]]]:
    """Per group, the intervals within ``[t0, t_end]`` during which the group was wanted (run)."""
    changes: dict[str, list[tuple[float, bool]]] = {g: [(t0, True)] for g in groups}
    for e in events:
        if e["ev"] == "tell" and e["rc"] == 0 and e["group"] in changes:
            run = e["level"] != "stop"
            changes[e["group"]].append((e["mono"] if run else e["begin"], run))
    out: dict[str, list[tuple[float, float]]] = {}
    for g, ch in changes.items():
        ch.sort()
        spans, since = [], None
        for t, run in [*ch, (t_end, False)]:
            t = min(max(t, t0), t_end)
            if run and since is None:
                since = t
            elif not run and since is not None:
                spans.append((since, t))
                since = None
        out[g] = spans
    return out


def bad_spans(group_lives: list[Life], wanted: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The intervals during which the group was wanted but did not run exactly once."""
    points: list[tuple[float, int]] = []
    for lf in group_lives:
        points += [(lf.start, 1), (lf.end, -1)]
    points.sort()
    bad: list[tuple[float, float]] = []
    for lo, hi in wanted:
        count = sum(1 for lf in group_lives if lf.start <= lo < lf.end)
        t = lo
        for p, d in points:
            if p <= lo:
                continue
            if p >= hi:
                break
            if count != 1 and p > t:
                bad.append((t, p))
            count += d
            t = p
        if count != 1 and hi > t:
            bad.append((t, hi))
    return bad


def max_skew(logdir: Path, groups: list[str], events: list[dict[str, Any]]) -> float:
    """The largest difference (either way, seconds) between the wall clock of a group process's record and the
    harness's, both taken against the same (true) monotonic clock: non-zero when a clock jump took effect."""
    base = [e["wall"] - e["mono"] for e in events if "wall" in e]
    if not base:
        return 0.0
    true = sorted(base)[len(base) // 2]
    return max((abs(e["wall"] - e["mono"] - true) for g in groups for e in _lines(logdir / f"{g}.events")
                if "wall" in e and "mono" in e), default=0.0)


def check(base: Path) -> Report:
    logdir = base / "chaos"
    events = _lines(logdir / "nemesis.log")
    fences = _lines(logdir / "fence.log")
    schedule = json.loads((logdir / "schedule.json").read_text())
    first = next(e for e in events if e["ev"] == "cluster_start")
    groups, nodes = first["groups"], first["nodes"]
    t0 = next((e["mono"] for e in events if e["ev"] == "faults_begin"), first["mono"])
    t_faults_end = next((e["mono"] for e in events if e["ev"] == "faults_end"), None)
    t_end = next((e["mono"] for e in events if e["ev"] in ("end", "shutdown")), events[-1]["mono"])
    rep = Report(seed=int(schedule["seed"]), t0=t0)
    all_lives, overlaps = lives(logdir, groups)
    rep.starts = len(all_lives)

    # the timeline, for humans
    for e in events:
        if e["ev"] not in ("step",):
            rep.timeline.append((e["mono"], "harness " + " ".join(f"{k}={v}" for k, v in e.items()
                                                                 if k not in ("mono", "wall", "ev")) + f" [{e['ev']}]"))
        else:
            rep.timeline.append((e["mono"], f"fault   {e['step']} #{e['fault']} {schedule['faults'][e['fault']]}"))
    for lf in all_lives:
        rep.timeline.append((lf.start, f"start   {lf.group} on {lf.node} pid {lf.pid}"))
        rep.timeline.append((lf.end, f"{'stop' if lf.graceful else 'gone'}    {lf.group} on {lf.node} pid {lf.pid}"
                                     + ("" if lf.graceful else " (last sign of life)")))
    for e in overlaps:
        rep.timeline.append((e["mono"], f"OVERLAP {e['group']} on {e['node']} pid {e['pid']} found the lock held"))
    for e in fences:
        rep.timeline.append((e["mono"], f"fence   {e['ev']} {e['node']} {e.get('action', '')} ok={e.get('ok', '')}"))
    rep.timeline.sort()

    def violate(claim: str, at: float, what: str) -> None:
        rep.violations.append(Violation(claim, at, what))

    # never two at once
    for e in overlaps:
        violate("overlap", e["mono"], f"{e['group']}: a start on {e['node']} (pid {e['pid']}) found the lock held")
    by_group: dict[str, list[Life]] = defaultdict(list)
    for lf in all_lives:
        by_group[lf.group].append(lf)
    for g, ls in by_group.items():
        for i, a in enumerate(ls):
            for b in ls[i + 1:]:
                if b.start < a.end:
                    violate("overlap", b.start, f"{g}: pid {b.pid} on {b.node} started while pid {a.pid} on "
                                                f"{a.node} still lived (until {a.end - t0:.3f}s)")

    # never a takeover before fencing
    fence_ok = [(e["mono"], e["node"]) for e in fences if e["ev"] == "fence_end" and e["ok"] and e["action"] != "on"]
    fence_begin = [(e["mono"], e["node"]) for e in fences if e["ev"] == "fence_begin" and e["action"] != "on"]
    # a node powered on, thawed or given its store back may stop and release its groups itself: no fence is due
    power_ons = [(e["mono"], e["node"]) for e in events
                 if e["ev"] in ("power_on", "thaw")
                 or (e["ev"] in ("store_ro", "store_full", "netns_cut") and e["mode"] == "rw")]
    failures = [(e["mono"], schedule["faults"][e["fault"]]["node"], e["step"].split(":")[0]) for e in events
                if e["ev"] == "step" and e["step"] in ("crash:begin", "freeze:begin", "fence_fail:begin",
                                                      "fence_hang:begin", "store_ro:begin",
                                                      "store_full:begin", "netns_cut:begin")]
    for f, node, kind in failures:
        for g, ls in by_group.items():
            holder = [lf for lf in ls if lf.start <= f and lf.node == node and lf.end >= f - 0.5
                      and not (lf.graceful and lf.end < f)]
            if not holder:
                continue
            nxt = next((lf for lf in ls if lf.start > f and lf.node != node), None)
            if nxt is None or any(f <= t <= nxt.start and n == node for t, n in power_ons):
                continue
            if not any(f <= t <= nxt.start and n == node for t, n in fence_ok):
                violate("unfenced-takeover", nxt.start, f"{g} started on {nxt.node} after {node}'s {kind} at "
                                                          f"{f - t0:.3f}s without a successful fence of {node}")

    # nothing left behind
    for t, node in fence_ok:
        began = max((b for b, n in fence_begin if n == node and b <= t), default=t)
        for lf in all_lives:
            if lf.node == node and lf.start < began and lf.end > t:
                violate("left-behind", lf.end, f"{lf.group} pid {lf.pid} on {node} lived until {lf.end - t0:.3f}s, "
                                               f"after {node} was fenced at {t - t0:.3f}s")
    for e in events:
        if e["ev"] == "crash":
            for lf in all_lives:
                if lf.node == e["node"] and lf.start < e["mono"] and lf.end > e["mono"] + GUARD_BOUND:
                    violate("left-behind", lf.end, f"{lf.group} pid {lf.pid} on {lf.node} outlived its daemon's "
                                                   f"crash at {e['mono'] - t0:.3f}s by more than {GUARD_BOUND:g} s")
        if e["ev"] == "daemon_exit" and e["cause"] == "stop":
            for lf in all_lives:
                if lf.node == e["node"] and lf.start < e["mono"] and lf.end > e["mono"]:
                    violate("left-behind", lf.end, f"{lf.group} pid {lf.pid} on {lf.node} outlived its daemon's "
                                                   f"graceful stop (exit seen at {e['mono'] - t0:.3f}s)")
        if e["ev"] == "leftover":
            violate("left-behind", e["mono"], f"processes of {e['node']} left after every daemon stopped: "
                                              f"{e['cmdlines']}")

    # no healthy node fenced
    down = [(e["mono"], schedule["faults"][e["fault"]]) for e in events
            if e["ev"] == "step" and e["step"].split(":")[0] in NODE_DOWN and e["step"].endswith(":begin")]
    unexpected_deaths = [(e["mono"], e["node"]) for e in events if e["ev"] == "daemon_exit" and not e["cause"]]
    for t, node in fence_begin:
        caused = any(f["node"] == node and at <= t <= at + f["duration"] + IMPAIRED_GRACE for at, f in down)
        if not caused and not any(n == node and d <= t for d, n in unexpected_deaths):
            violate("healthy-fenced", t, f"{node} was fenced although the nemesis had not taken it down")

    # bad input refused, good input taken
    for e in events:
        if e["ev"] == "edit_result" and (e["rc"] == 0) != (e["expect"] == "accepted"):
            violate("bad-input", e["mono"], f"omha load: expected {e['expect']}, exit status {e['rc']}")

    # the VIP and the @mount disk: never on two nodes, never left on a node whose daemon stopped or crashed or
    # that was fenced (the fence powers it off), the disk never mounted in the host's own namespace
    downs = [(e["mono"], e["node"], e["cause"]) for e in events if e["ev"] == "daemon_exit" and e["cause"]]
    for ev, what, duplicate in (("vip", "the VIP", "vip-duplicate"), ("mount", "the disk's mount", "mount-duplicate")):
        samples = [e for e in events if e["ev"] == ev]
        for i, e in enumerate(samples):
            until = samples[i + 1]["begun"] if i + 1 < len(samples) else t_end
            nodes_holding = [n for n in e["holders"] if n != HOST]
            if len(nodes_holding) > 1:
                violate(duplicate, e["mono"], f"{what} on {nodes_holding} at once")
            if HOST in e["holders"]:
                violate("left-behind", e["mono"], f"{what} in the host's own mount namespace")
            for node in nodes_holding:
                for t, n, cause in downs:
                    bound = 0.5 if cause == "stop" else GUARD_BOUND
                    if n == node and until > t + bound and not any(n == node and t < p <= until
                                                                    for p, n in power_ons):
                        violate("left-behind", until, f"{what} still on {node} at {until - t0:.3f}s after its "
                                                      f"daemon's {cause} at {t - t0:.3f}s")
                        break
                for t, n in fence_ok:
                    # read after the fence reported success, with no power-on of the node in between
                    if n == node and e["begun"] > t and not any(n == node and t < p <= e["begun"]
                                                                 for p, n in power_ons):
                        violate("left-behind", e["mono"], f"{what} still on {node} at {e['begun'] - t0:.3f}s after "
                                                          f"{node} was fenced at {t - t0:.3f}s")
                        break

    # no daemon crash
    for e in events:
        if e["ev"] == "daemon_exit" and not e["cause"]:
            fenced = any(n == e["node"] and t <= e["mono"] for t, n in fence_begin)
            if not (fenced and e["rc"] == -9):
                violate("daemon-crash", e["mono"], f"daemon of {e['node']} (pid {e['pid']}) exited by itself, "
                                                   f"status {e['rc']}")
    for node in nodes:
        for name in ("omha.log", "stderr.log"):
            path = base / node / name
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()
            # a group's own output is logged as "omha.init INFO group/tag: ..." (a worker killed while Python
            # starts prints a traceback): only the daemon's tracebacks count
            own = [i for i, ln in enumerate(lines) if "Traceback" in ln and not CHILD_OUTPUT.search(ln)]
            if own:
                violate("daemon-crash", t_end, f"{path}:\n" + "\n".join(lines[max(0, own[0] - 3): own[0] + 30]))

    # figures: faults, availability, recovery
    for e in events:
        if e["ev"] == "step" and e["step"].endswith(":begin"):
            rep.faults[e["step"].split(":")[0]] += 1
        if e["ev"] == "skip":
            rep.skipped[e["kind"]] += 1
        if e["ev"] == "clock_jump":
            rep.jumps += 1
    rep.skew = max_skew(logdir, groups, events)
    for e in fences:
        if e["ev"] == "fence_end":
            rep.fences["ok" if e["ok"] else "failed"] += 1
    wanted = wanted_periods(events, groups, t0, t_end)
    merged: dict[str, list[tuple[float, float]]] = {}
    for g in groups:
        spans = bad_spans(by_group[g], wanted[g])
        total = sum(hi - lo for lo, hi in wanted[g])
        rep.availability[g] = 1 - sum(hi - lo for lo, hi in spans) / total if total else 1.0
        merged[g] = []
        for lo, hi in spans:
            if merged[g] and lo - merged[g][-1][1] < 1e-6:
                merged[g][-1] = (merged[g][-1][0], hi)
            else:
                merged[g].append((lo, hi))
    # recovery after a fault: until the end of each group's first outage that began between this fault and the
    # next one (0 when none began); an outage still open when the records end is counted as not recovered
    begins = sorted((e["mono"], e["step"].split(":")[0]) for e in events
                    if e["ev"] == "step" and e["step"].endswith(":begin"))
    horizon = t_faults_end if t_faults_end is not None else t_end
    for i, (f, kind) in enumerate(begins):
        nxt = begins[i + 1][0] if i + 1 < len(begins) else horizon
        ends = [next((hi for lo, hi in merged[g] if f - 2 * TICK <= lo < nxt), f) for g in groups]
        if max(ends) >= t_end - 1e-6:
            rep.censored[kind] += 1
        else:
            rep.recovery.setdefault(kind, []).append(max(ends) - f)
    if t_faults_end is not None:
        wanted_end = wanted_periods(events, groups, t_faults_end, t_end)
        last_bad = max((hi for g in groups for _, hi in bad_spans(by_group[g], wanted_end[g])), default=t_faults_end)
        ok_at_end = last_bad < t_end - 1.0
        rep.settle = last_bad - t_faults_end if ok_at_end else None
        if rep.settle is None or rep.settle > RECOVERY_BOUND:
            violate("recovery", t_end, f"after the faults stopped, a wanted group did not run exactly once within "
                                       f"{RECOVERY_BOUND:g} s (settled: {rep.settle})")
    rep.violations.sort(key=lambda v: v.at)
    return rep
