"""The cluster status report behind ``omha status`` and ``HA.status()``: read from the store, no daemon needed.

Liveness cannot be judged from one look at the store, so node states come from the *view* that live daemons
publish in their status (each judges liveness on its own monotonic clock); the report takes the view of the
node whose status is freshest. When even that status is older than ``dead_after`` (by this machine's clock, the
one place a wall-clock age is used, and only for display), no daemon is known to be alive: every node is shown
``unknown`` rather than as the dead observer last saw it. A status stamped more than :data:`CLOCK_SLACK` in the
future (a clock running ahead) is not chosen as the observer while another is plausible.

The JSON schema (``omha status --json``)::

    {"schema": "omha.status/1", "cluster": "omha", "observer": "n1", "stale": null,
     "quorum": {"have": true, "member": true, "detail": "3 of 3 expected nodes"},
     "nodes": {"n1": {"state": "up", "silent": 0.0, "age": 0.1, "problem": null, "fencing": null,
                      "config_errors": [], "containment": "cgroup", "standby": false}},
     "groups": {"web": {"want": "run", "running_on": ["n2"], "why": null, "prefer": "n2",
                        "prefer_why": null,
                        "instances": {"n2": {"level": "run", "state": "DONE", "since": 1764097000.1,
                                             "entries": {"srv": {"pid": 123, "state": "running", ...}}}}}},
     "config": {"cltab": "<version>", "hactl": "<version>", "errors": []},
     "operator": {"prefer": {"web": "n2"}, "standby": [], "version": "<version>", "problem": null}}

``operator`` holds the operators' standing orders (``omha move``, ``omha standby``; see :mod:`omha_core.operator`);
``docs/schemas/omha.status.json`` is the JSON Schema of this document.

``config`` names the versions the observer runs (adopted after validation), not merely the newest in the store.
Node states: ``up``, ``stopping``, ``lost``, ``fencing``, ``fenced``, ``fence-failed``, ``unfenced``, ``grace``,
``waiting`` (lost, but this partition has no quorum to fence it), ``stopped`` (its daemon shut down cleanly: its
own last word, shown even when stale), ``unknown``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from omha_core.backends import Store, newest_valid
from omha_core.errors import ParseError, StoreError
from omha_core.group_state import GroupState
from omha_core.hactl import STOP_LEVEL, parse_hactl
from omha_core.operator import OperatorState, read_operator

#: how far in the future a status's ``time`` may be and still count as this machine's "now" (clock skew)
CLOCK_SLACK = 2.0


def newest_valid_hactl(store: Store) -> tuple[dict[str, str], str | None, list[str]]:
    """The newest valid hactl in the store: (wanted, version, errors of newer invalid versions)."""
    found, errors = newest_valid("hactl", store.documents("hactl"), lambda d: parse_hactl(d.text, d.origin or "hactl"))
    return (found[1], found[0].version, errors) if found is not None else ({}, None, errors)


def adopted_version(store: Store, name: str) -> tuple[str | None, str | None]:
    """(version of ``name`` the freshest daemon runs, that daemon), or (None, None) when no daemon published one."""
    docs = {n: d for n, d in store.statuses().items() if isinstance(d, Mapping)}
    for node in sorted(docs, key=lambda n: _time(docs[n]), reverse=True):
        config = docs[node].get("config")
        version = config.get(name) if isinstance(config, Mapping) else None
        if isinstance(version, str):
            return version, node
    return None, None


def adopted_hactl(store: Store, version: str | None) -> tuple[dict[str, str], str | None, list[str]]:
    """The hactl the daemons run (``version``, as adopted by the observer); the newest valid one when that
    version is unknown or gone. Same return shape as :func:`newest_valid_hactl`."""
    if version is not None:
        for doc in store.documents("hactl"):
            if doc.version == version:
                try:
                    return parse_hactl(doc.text, doc.origin or "hactl"), version, []
                except ParseError:
                    break
    return newest_valid_hactl(store)


def _time(doc: Mapping[str, Any]) -> float:
    value = doc.get("time")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _prefer_why(
    target: str | None,
    want: str | None,
    group: str,
    running: list[str],
    nodes: Mapping[str, Any],
    docs: Mapping[str, Mapping[str, Any]],
    standby: frozenset[str],
) -> str | None:
    """Why a group moved to ``target`` (``omha move``) does not run there, when it does not."""
    if target is None or want in (None, STOP_LEVEL) or running == [target]:
        return None
    doc = docs.get(target) or {}
    unfit, failed = doc.get("unfit") or {}, doc.get("failed") or {}
    if target not in nodes:
        return f"{target} is not a known node"
    if target in standby:
        return f"{target} is in standby"
    if nodes[target]["state"] != "up":
        return f"{target} is {nodes[target]['state']}"
    if isinstance(unfit, Mapping) and group in unfit:
        return f"{target} unfit: {unfit[group]}"
    if isinstance(failed, Mapping) and group in failed:
        return f"{failed[group]} on {target} (omha cleanup {group} {target} to retry now)"
    return f"moving to {target}"


def cluster_report(store: Store, cluster: str = "omha", dead_after: float = 2.0) -> dict[str, Any]:
    """Assemble the report from what the store holds now (``dead_after``: see the module docstring)."""
    raw = store.statuses()
    docs = {n: d for n, d in raw.items() if isinstance(d, Mapping)}
    now = time.time()
    # a status stamped in the future comes from a clock running ahead: it must not win "freshest" forever
    plausible = [n for n in docs if _time(docs[n]) <= now + CLOCK_SLACK] or list(docs)
    observer = max(plausible, key=lambda n: _time(docs[n]), default=None)
    view: Mapping[str, Any] = (docs[observer].get("view") or {}) if observer else {}
    view_nodes: Mapping[str, Any] = view.get("nodes") or {}
    age = now - _time(docs[observer]) if observer else None
    stale = round(age, 1) if age is not None and age > dead_after else None
    adopted = (docs[observer].get("config") or {}) if observer else {}
    adopted = adopted if isinstance(adopted, Mapping) else {}
    wanted, hactl_version, hactl_errors = adopted_hactl(store, adopted.get("hactl"))
    try:
        ops = read_operator(store)
    except StoreError as exc:
        ops = OperatorState(problem=str(exc))

    nodes: dict[str, Any] = {}
    for name in sorted({*raw, *view_nodes}):
        v = view_nodes.get(name) or {}
        doc = docs.get(name, {})
        entry = {
            "state": v.get("state", "unknown"),
            "silent": v.get("silent"),
            "age": round(time.time() - float(doc["time"]), 1) if isinstance(doc.get("time"), int | float) else None,
            "problem": v.get("problem") or (str(raw[name]) if isinstance(raw.get(name), Exception) else None),
            "fencing": v.get("fencing"),
            "config_errors": (doc.get("config") or {}).get("errors") or [],
            # how the node's init holds the processes it starts: "cgroup", or the weaker "environment marker"
            "containment": doc.get("containment"),
            "standby": name in ops.standby,
            # "plugin X failed: ..." per site plugin that raised (its failure counts as a veto of this node)
            "plugin_errors": sorted((doc.get("plugin_errors") or {}).values())
            if isinstance(doc.get("plugin_errors"), Mapping)
            else [],
        }
        if doc.get("shutting_down") and entry["state"] == "up":
            entry["state"] = "stopping"
        if doc.get("stopped"):
            entry["state"] = "stopped"
        elif stale is not None:
            entry["state"] = "unknown"
        nodes[name] = entry

    groups: dict[str, Any] = {}
    names = list(dict.fromkeys([*wanted, *(g for d in docs.values() for g in (d.get("groups") or {}))]))
    why = view.get("why") or {}
    for group in names:
        instances: dict[str, Any] = {}
        for node, doc in docs.items():
            g: Any = (doc.get("groups") or {}).get(group)
            state = GroupState.read(g)
            # stopped instances are left out, but not one still stopping or whose stop FAILED (it may hold resources)
            if state is None or not state.active:
                continue
            instances[node] = {
                "level": g.get("level"),
                "state": g.get("state"),
                "since": g.get("since"),
                "entries": g.get("entries") if isinstance(g.get("entries"), Mapping) else {},
            }
        want = wanted.get(group)
        running = sorted(n for n, i in instances.items() if i["level"] == want and nodes[n]["state"] == "up")
        groups[group] = {
            "want": want,
            "running_on": running,
            "instances": instances,
            "why": None if running else why.get(group),
            "prefer": ops.prefer.get(group),
            "prefer_why": _prefer_why(ops.prefer.get(group), want, group, running, nodes, docs, ops.standby),
        }
    config_errors = sorted({e for n in nodes.values() for e in n["config_errors"]} | set(hactl_errors))
    quorum = view.get("quorum") or {"have": None, "detail": "no daemon has published a view yet"}
    if stale is not None:
        detail = f"no daemon is known to run: the newest status, {observer}'s, is {stale} s old"
        quorum = {"have": None, "detail": detail}
    return {
        "schema": "omha.status/1",
        "cluster": cluster,
        "observer": observer,
        "stale": stale,
        "quorum": quorum,
        "nodes": nodes,
        "groups": groups,
        "config": {"cltab": adopted.get("cltab"), "hactl": hactl_version, "errors": config_errors},
        "operator": {
            "prefer": dict(sorted(ops.prefer.items())),
            "standby": sorted(ops.standby),
            "version": ops.version,
            "problem": ops.problem,
        },
    }


def format_report(rep: Mapping[str, Any]) -> str:
    """Human-readable report, after crm_mon: nodes, quorum, then each group."""
    q = rep["quorum"]
    have = {True: "yes", False: "NO"}.get(q.get("have"), "UNKNOWN")
    lines = [
        f"cluster {rep['cluster']}: quorum {have} ({q.get('detail', '')})"
        + (f", as seen by {rep['observer']}" if rep["observer"] else ""),
        "",
        "Nodes:",
    ]
    for name, n in rep["nodes"].items():
        extra = []
        if n["silent"] is not None and n["state"] != "up":
            extra.append(f"silent {n['silent']}s")
        elif n["age"] is not None:
            extra.append(f"seen {n['age']}s ago")
        if n["fencing"]:
            f = n["fencing"]
            detail = f.get("warning") or f.get("message") or f.get("reason") or "; ".join(f.get("errors") or [])
            extra.append(
                f"fencing: {f.get('state')}"
                + (f" by {f['by']}" if f.get("by") else "")
                + (f" ({detail})" if detail else "")
            )
        if n["problem"]:
            extra.append(f"status unreadable: {n['problem']}")
        extra += [str(e) for e in n.get("plugin_errors") or []]
        if n.get("containment") == "environment marker":
            extra.append("no cgroup v2: descendants are tracked by environment marker only")
        if n.get("standby"):
            extra.insert(0, "standby (omha unstandby to end it)")
        lines.append(f"  {name:<12} {n['state'].upper():<12} {'; '.join(extra)}")
    lines += ["", "Groups:"]
    if not rep["groups"]:
        lines.append("  (none wanted in hactl)")
    for name, g in rep["groups"].items():
        want = g["want"] or "stop"
        where = (
            ", ".join(
                f"{n} {i['level']}/{i['state']}"
                + ("" if rep["nodes"][n]["state"] == "up" else f" ({rep['nodes'][n]['state']})")
                for n, i in sorted(g["instances"].items())
            )
            or "nowhere"
        )
        line = f"  {name:<12} want {want:<8} {where}"
        if g.get("prefer"):
            blocked = f"; {g['prefer_why']}" if g.get("prefer_why") else ""
            line += f"  (prefers {g['prefer']}{blocked}: omha unmove to clear)"
        if g["why"]:
            line += f"  -- {g['why']}"
        lines.append(line)
    if (rep.get("operator") or {}).get("problem"):
        lines += ["", f"Operator document unreadable: {rep['operator']['problem']}"]
    if rep["config"]["errors"]:
        lines += ["", "Configuration refused (the last good version keeps running):"]
        lines += [f"  {e}" for e in rep["config"]["errors"]]
    return "\n".join(lines)
