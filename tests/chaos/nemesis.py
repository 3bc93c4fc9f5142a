"""The fault schedule: drawn up front from a seed, so that a seed replays the same schedule.

A :class:`Fault` starts at ``at`` seconds into the campaign and, for the faults that last, ends ``duration``
seconds later. :func:`draw` never impairs more than a minority of the nodes at once (crashed, frozen or
restarting, plus a margin to rejoin), so the cluster keeps quorum and every fault is one it must survive.
:func:`actions` flattens the schedule into the timed steps the harness performs.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass

#: what each kind does (begin / end)
KINDS = {
    "crash": "SIGKILL the node's daemon (its guard kills its groups); power it on again after `duration`",
    "freeze": "SIGSTOP the node's daemon for `duration` (> dead_after; its groups keep running), then SIGCONT "
    "(or power it on again when it was fenced meanwhile)",
    "kill_proc": "SIGKILL the running process of `group` (wherever it runs)",
    "flip": "`omha tell group stop` from `node`, then `omha tell group run` from `node2` after `duration`",
    "restart": "SIGTERM the node's daemon (a graceful stop of its groups), start it again after `duration`",
    "fence_fail": "the fence device fails for `node` during `duration`, and `node` crashes or freezes (`also`) "
    "for that time",
    "fence_hang": "the fence device hangs past its timeout for `node` during `duration`, and `node` crashes or "
    "freezes (`also`) for that time",
    "edit": "a cltab or hactl edit (`also`): invalid files written into the shared directory, invalid ones given "
    "to `omha load` (refused), or a valid one loaded; the original is restored after `duration`",
    "state_full": "`node`'s state_dir (a small tmpfs) filled up for `duration`",
    "store_ro": "`node`'s view of the shared directory (a bind mount in its own mount namespace) remounted "
    "read-only for `duration` (sharedfs only)",
    "store_full": "`node`'s view of the shared directory replaced for `duration` by a copy of it on a tiny tmpfs "
    "filled up (every write fails with ENOSPC, reads see the copy; sharedfs only, not in the default mix)",
    "netns_cut": "`node`'s network link to etcd cut (packets dropped) for `duration` (etcd with --netns only, not "
    "in the default mix)",
    "plugin_raise": "a site plugin's hooks (`also`: fitness, notify, register or all) raise on `node` for `duration`",
    "clock_jump": "`node` restarted (SIGTERM, start again) with its wall clock offset by `also` (`+95s`, `-40s`: "
    "libfaketime, the monotonic clock left alone), and restarted with the true time after `duration`",
    "etcd_kill": "SIGKILL etcd member `node` (m0, m1, m2), start it again after `duration`",
    "etcd_leader_kill": "SIGKILL whichever etcd member leads at that moment, start it again after `duration`",
}
#: relative frequency of each kind in the default mix
DEFAULT_WEIGHTS = {
    "crash": 3,
    "freeze": 3,
    "kill_proc": 2,
    "flip": 2,
    "restart": 2,
    "fence_fail": 1,
    "fence_hang": 1,
    "edit": 1,
    "state_full": 1,
    "plugin_raise": 1,
    "clock_jump": 1,
}
#: the variants of an ``edit`` fault (``Fault.also``)
EDITS = ["cltab_file", "hactl_file", "load_cltab", "load_hactl", "load_valid"]
#: added to the mix when the store is the shared directory
SHAREDFS_WEIGHTS = {"store_ro": 1}
#: added to the mix when the store is etcd (one member down at a time, so etcd keeps its quorum)
ETCD_WEIGHTS = {"etcd_kill": 1, "etcd_leader_kill": 1}
ETCD_MEMBERS = ["m0", "m1", "m2"]
#: kinds that take a node out for a while
IMPAIRING = {"crash", "freeze", "restart", "clock_jump", "fence_fail", "fence_hang", "store_ro", "store_full",
             "netns_cut"}
#: kinds only drawn when asked for (``--add``), so that the default mix, and every seed's schedule, stay as they were
OPTIONAL_WEIGHTS = {"store_full": 1, "netns_cut": 1}
#: the largest wall-clock offset of a ``clock_jump`` (seconds, either way)
MAX_JUMP = 180.0
#: seconds a node needs after an impairing fault ends before it counts as a member again
REJOIN_MARGIN = 3.0


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    node: str = ""
    group: str = ""
    duration: float = 0.0
    node2: str = ""
    also: str = ""


def draw(
    seed: int,
    duration: float,
    nodes: list[str],
    groups: list[str],
    dead_after: float,
    weights: dict[str, int] | None = None,
    gap: tuple[float, float] = (2.0, 5.0),
) -> list[Fault]:
    """The schedule of ``seed``: faults from ``gap[0]`` s on, one every ``gap`` seconds, until ``duration``."""
    rng = random.Random(seed)
    weights = dict(weights or DEFAULT_WEIGHTS)
    kinds = sorted(weights)
    max_impaired = (len(nodes) - 1) // 2
    busy_until: dict[str, float] = {}  # node -> end of its impairment (+ margin)
    group_busy: dict[str, float] = {}
    state_busy: dict[str, float] = {}
    etcd_busy = -1.0
    faults: list[Fault] = []
    t = rng.uniform(*gap)
    while t < duration:
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        free = [n for n in nodes if busy_until.get(n, -1.0) <= t]
        impaired = len(nodes) - len(free)
        if kind in IMPAIRING and (impaired >= max_impaired or not free):
            kind = rng.choice([k for k in ("kill_proc", "flip") if k in weights] or ["kill_proc"])
        node = rng.choice(free or nodes)
        group = rng.choice(groups)
        if kind == "crash":
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(2.0, 6.0), 2))
        elif kind == "freeze":
            f = Fault(round(t, 2), kind, node=node, duration=round(dead_after * rng.uniform(1.5, 4.0), 2))
        elif kind in ("store_ro", "store_full", "netns_cut"):
            f = Fault(round(t, 2), kind, node=node, duration=round(dead_after * rng.uniform(0.5, 4.0), 2))
        elif kind == "restart":
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(0.5, 3.0), 2))
        elif kind == "clock_jump":
            offset = round(rng.uniform(2.0, MAX_JUMP)) * rng.choice([1, -1])
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(5.0, 20.0), 2), also=f"{offset:+d}s")
        elif kind == "flip":
            if group_busy.get(group, -1.0) > t:
                t += rng.uniform(*gap)
                continue
            f = Fault(round(t, 2), kind, node=node, group=group, duration=round(rng.uniform(1.0, 4.0), 2),
                      node2=rng.choice(nodes))
            group_busy[group] = t + f.duration + 1.0
        elif kind in ("fence_fail", "fence_hang"):
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(4.0, 10.0), 2),
                      also=rng.choice(["crash", "freeze"]))
        elif kind == "edit":
            if max(group_busy.values(), default=-1.0) > t:
                t += rng.uniform(*gap)
                continue
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(1.0, 4.0), 2),
                      also=rng.choice(EDITS))
            for g in groups:
                group_busy[g] = t + f.duration + 1.0
        elif kind == "plugin_raise":
            if state_busy.get("plugin:" + node, -1.0) > t:
                t += rng.uniform(*gap)
                continue
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(3.0, 8.0), 2),
                      also=rng.choice(["fitness", "notify", "register", "all"]))
            state_busy["plugin:" + node] = t + f.duration
        elif kind == "state_full":
            if state_busy.get(node, -1.0) > t:
                t += rng.uniform(*gap)
                continue
            f = Fault(round(t, 2), kind, node=node, duration=round(rng.uniform(3.0, 8.0), 2))
            state_busy[node] = t + f.duration

        elif kind in ("etcd_kill", "etcd_leader_kill"):
            member = rng.choice(ETCD_MEMBERS)
            if etcd_busy > t:
                t += rng.uniform(*gap)
                continue
            f = Fault(round(t, 2), kind, node=member if kind == "etcd_kill" else "",
                      duration=round(rng.uniform(2.0, 6.0), 2))
            etcd_busy = t + f.duration + REJOIN_MARGIN
        else:
            f = Fault(round(t, 2), "kill_proc", group=group)
        if f.kind in IMPAIRING:
            busy_until[node] = t + f.duration + REJOIN_MARGIN
        faults.append(f)
        t += rng.uniform(*gap)
    return faults


def actions(faults: list[Fault]) -> list[tuple[float, str, int]]:
    """``(at, step, index of the fault)`` in time order: every fault's begin step, and its end step if it lasts."""
    steps: list[tuple[float, str, int]] = []
    for i, f in enumerate(faults):
        steps.append((f.at, f"{f.kind}:begin", i))
        if f.duration:
            steps.append((round(f.at + f.duration, 2), f"{f.kind}:end", i))
    return sorted(steps, key=lambda s: (s[0], s[2]))


def dumps(seed: int, faults: list[Fault]) -> str:
    """The schedule as JSON (saved with every run, printed on a failure)."""
    return json.dumps({"seed": seed, "faults": [asdict(f) for f in faults]}, indent=1)


def describe(faults: list[Fault]) -> str:
    """One line per fault, for humans."""
    lines = []
    for f in faults:
        what = " ".join(x for x in (f.node, f.group, f"-> {f.node2}" if f.node2 else "", f.also) if x)
        lines.append(f"  {f.at:8.2f}s {f.kind:<10} {what}" + (f" for {f.duration:g}s" if f.duration else ""))
    return "\n".join(lines)
