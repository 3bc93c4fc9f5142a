"""The operator commands of the ``omha`` CLI: move/unmove, standby/unstandby, cleanup, ``tell --wait`` and
``status --check`` (a Nagios/Icinga plugin).

Their ``--json`` output is versioned: each document carries ``"schema": "omha.<command>/<version>"``, and
``docs/schemas/`` holds the JSON Schema of each (``docs/operator.md`` shows them in use). A version changes only
when a field is removed or changes meaning; new fields may appear in any version.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

from omha_core.cli_common import emit as emit
from omha_core.cli_common import guard, open_store, setup
from omha_core.cli_common import print_error as print_error

#: Nagios plugin exit codes
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


def _known_nodes(store: Any) -> list[str]:
    return sorted(store.statuses())


def _check_node(store: Any, node: str) -> None:
    from omha_core.cltab import NAME_RE
    from omha_core.errors import OmhaError

    if not NAME_RE.match(node):
        raise OmhaError(f"node {node!r} must be letters, digits, '_', '.' or '-'")
    known = _known_nodes(store)
    if node not in known:
        raise OmhaError(f"no node {node!r} has ever published a status (known: {', '.join(known) or 'none'})")


def _check_group(group: str) -> None:
    from omha_core.cltab import NAME_RE
    from omha_core.errors import OmhaError

    if not NAME_RE.match(group):
        raise OmhaError(f"group {group!r} must be letters, digits, '_', '.' or '-'")


# -- move / unmove -----------------------------------------------------------------------------------------
@guard
def cmd_move(args: argparse.Namespace) -> int:
    from omha_core.operator import update_operator

    config, pm = setup(args)
    store = open_store(config, pm)
    _check_group(args.group)
    _check_node(store, args.node)
    before: dict[str, Any] = {}

    def change(doc: dict[str, Any]) -> None:
        before["prefer"] = doc["prefer"].get(args.group)
        doc["prefer"][args.group] = args.node

    state = update_operator(store, change)
    out = {"schema": "omha.move/1", "group": args.group, "node": args.node, "previous": before["prefer"]}
    out["version"] = state.version
    note = " (it is in standby: the group moves there once it leaves standby)" if args.node in state.standby else ""
    emit(args, out, f"{args.group}: prefers {args.node} until omha unmove {args.group}{note}")
    return 0


@guard
def cmd_unmove(args: argparse.Namespace) -> int:
    from omha_core.operator import update_operator

    config, pm = setup(args)
    store = open_store(config, pm)
    _check_group(args.group)
    before: dict[str, Any] = {}

    def change(doc: dict[str, Any]) -> None:
        before["prefer"] = doc["prefer"].pop(args.group, None)

    state = update_operator(store, change)
    out = {"schema": "omha.move/1", "group": args.group, "node": None, "previous": before["prefer"]}
    out["version"] = state.version
    text = f"{args.group}: no preferred node" + (f" (was {before['prefer']})" if before["prefer"] else " (had none)")
    emit(args, out, text)
    return 0


# -- standby / unstandby -----------------------------------------------------------------------------------
def _standby(args: argparse.Namespace, on: bool) -> int:
    from omha_core.operator import update_operator

    config, pm = setup(args)
    store = open_store(config, pm)
    if on:
        _check_node(store, args.node)
    before: dict[str, Any] = {}

    def change(doc: dict[str, Any]) -> None:
        nodes = set(doc["standby"])
        before["standby"] = args.node in nodes
        (nodes.add if on else nodes.discard)(args.node)
        doc["standby"] = sorted(nodes)

    state = update_operator(store, change)
    out = {
        "schema": "omha.standby/1",
        "node": args.node,
        "standby": on,
        "was_standby": before["standby"],
        "standby_nodes": sorted(state.standby),
        "version": state.version,
    }
    text = (
        f"{args.node}: in standby: it stops its groups (they move) and is given none"
        if on
        else f"{args.node}: not in standby" + ("" if before["standby"] else " (it was not)")
    )
    emit(args, out, text)
    return 0


@guard
def cmd_standby(args: argparse.Namespace) -> int:
    return _standby(args, True)


@guard
def cmd_unstandby(args: argparse.Namespace) -> int:
    return _standby(args, False)


# -- cleanup -----------------------------------------------------------------------------------------------
@guard
def cmd_cleanup(args: argparse.Namespace) -> int:
    from omha_core.operator import ALL_NODES, new_request_id, update_operator

    config, pm = setup(args)
    store = open_store(config, pm)
    _check_group(args.group)
    if args.node:
        _check_node(store, args.node)
    request = new_request_id()
    who = args.node or ALL_NODES

    def change(doc: dict[str, Any]) -> None:
        # one request per (group, node): the latest replaces the previous one, so the document stays small
        doc["cleanup"].setdefault(args.group, {})[who] = request

    state = update_operator(store, change)
    out = {"schema": "omha.cleanup/1", "group": args.group, "node": args.node, "request": request}
    out["version"] = state.version
    where = f"on {args.node}" if args.node else "on every node"
    emit(args, out, f"{args.group}: failures forgotten {where}; it is tried there again")
    return 0


# -- tell --wait -------------------------------------------------------------------------------------------
def at_level(rep: Mapping[str, Any], group: str, level: str) -> list[str] | None:
    """Nodes where ``group`` runs settled at ``level`` (for ``stop``: [] once it runs nowhere); None while not
    reached. Only once the daemons run an hactl asking for ``level``."""
    g = rep["groups"].get(group)
    want = g["want"] if g else None
    if level == "stop":
        return [] if not g or (want in (None, "stop") and not g["instances"]) else None
    if not g or want != level:
        return None
    up = {n for n, v in rep["nodes"].items() if v["state"] == "up"}
    nodes = sorted(
        n for n, i in g["instances"].items() if n in up and i["level"] == level and i["state"] in ("DONE", "PASSED")
    )
    return nodes or None


def blocked(rep: Mapping[str, Any], group: str, level: str) -> tuple[str, str] | None:
    """Why ``group`` cannot reach ``level`` now: (code, message), or None while it may. Codes: ``no-quorum``,
    ``unfit`` (no node may run it), ``fence-failed``, ``undefined`` (not in the cltab)."""
    g = rep["groups"].get(group)
    if level == "stop" or not g or g["want"] != level:
        return None
    why = g.get("why") or ""
    if why == "not defined in cltab":
        return "undefined", f"{group} is not defined in the cltab in force"
    if rep["quorum"].get("have") is False:
        return "no-quorum", f"no quorum ({rep['quorum'].get('detail', '')})"
    if why.startswith("no fit node"):
        return "unfit", why
    failed = [n for n, v in rep["nodes"].items() if v["state"] == "fence-failed"]
    if failed and "fencing" in why:
        return "fence-failed", f"fencing {', '.join(failed)} failed: {why}"
    return None


def wait_for_level(store: Any, config: Any, group: str, level: str, timeout: float) -> dict[str, Any]:
    """Poll the cluster report until ``group`` is at ``level`` somewhere (or stopped everywhere), cannot get
    there (the same reason seen for two heartbeats, so that a passing moment is not taken for a verdict), or
    ``timeout`` passes. Returns the ``wait`` part of ``omha.tell/1``."""
    from omha_core.report import cluster_report

    dead_after = float(config.timing["dead_after"])
    grace = 2 * float(config.timing.get("heartbeat", 0.5)) + 0.2
    start = time.monotonic()
    deadline = start + timeout
    first_seen: dict[str, float] = {}
    rep: Mapping[str, Any] = {}
    while True:
        rep = cluster_report(store, config.cluster_name, dead_after)
        nodes = at_level(rep, group, level)
        if nodes is not None:
            return {"reached": True, "reason": None, "message": "reached", "nodes": nodes}
        now = time.monotonic()
        why = blocked(rep, group, level)
        if why is None:
            first_seen.clear()
        else:
            since = first_seen.setdefault(why[0], now)
            if now - since >= grace:
                return {"reached": False, "reason": why[0], "message": why[1], "nodes": []}
        if now >= deadline:
            g = rep["groups"].get(group) or {}
            detail = g.get("why") or (rep.get("quorum") or {}).get("detail") or "no reason published"
            msg = f"not reached after {timeout:g} s: {detail}"
            return {"reached": False, "reason": "timeout", "message": msg, "nodes": []}
        time.sleep(0.2)


# -- status --check ----------------------------------------------------------------------------------------
def nagios_check(rep: Mapping[str, Any]) -> tuple[int, str, dict[str, int]]:
    """Judge a cluster report the way a Nagios/Icinga plugin does: (exit code, summary, perfdata).

    CRITICAL: no quorum, no daemon known to run, a wanted group running nowhere, a node whose fencing failed.
    WARNING: a node not up or in standby, a group starting or stopping, a refused configuration.
    """
    nodes = rep["nodes"]
    up = [n for n, v in nodes.items() if v["state"] == "up"]
    wanted = {g: v for g, v in rep["groups"].items() if v["want"] not in (None, "stop")}
    settled = [g for g in wanted if at_level(rep, g, wanted[g]["want"])]
    crit: list[str] = []
    warn: list[str] = []
    if rep.get("stale") is not None or rep.get("observer") is None:
        crit.append(rep["quorum"].get("detail") or "no daemon has published a status")
    elif rep["quorum"].get("have") is not True:
        crit.append(f"no quorum ({rep['quorum'].get('detail', '')})")
    for name, v in nodes.items():
        if v["state"] == "fence-failed":
            crit.append(f"fencing {name} failed")
        elif v["state"] != "up":
            warn.append(f"node {name} {v['state']}")
        if v.get("standby"):
            warn.append(f"node {name} in standby")
    for group, g in rep["groups"].items():
        failed = sorted(n for n, i in g["instances"].items() if i["state"] == "FAILED")
        if failed:
            crit.append(f"{group} FAILED on {', '.join(failed)}")
    for group, g in wanted.items():
        if group in settled:
            continue
        if g["running_on"] or g["instances"]:
            warn.append(f"{group} in transition")
        else:
            crit.append(f"{group} running nowhere" + (f" ({g['why']})" if g.get("why") else ""))
    if rep["config"]["errors"]:
        warn.append(f"{len(rep['config']['errors'])} configuration error(s) refused")
    code = CRITICAL if crit else WARNING if warn else OK
    head = f"{len(up)}/{len(nodes)} nodes up, {len(settled)}/{len(wanted)} groups at level"
    summary = "; ".join([head, *crit, *warn])
    perf = {"nodes_up": len(up), "nodes": len(nodes), "groups_ok": len(settled), "groups_wanted": len(wanted)}
    return code, summary, perf


def status_check(args: argparse.Namespace) -> int:
    """``omha status --check``: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no configuration, store
    unreachable)."""
    from omha_core.report import cluster_report

    perf: dict[str, int] = {}
    try:
        config, pm = setup(args, registrations_only=True)
        rep = cluster_report(open_store(config, pm), config.cluster_name, float(config.timing["dead_after"]))
    except Exception as exc:  # a monitoring probe must answer UNKNOWN, not crash
        code, summary = UNKNOWN, f"cannot read the cluster status: {exc}"
    else:
        code, summary, perf = nagios_check(rep)
    maxima = {"nodes_up": perf.get("nodes"), "groups_ok": perf.get("groups_wanted")}
    perfdata = " ".join(f"{k}={v};;;0" + (f";{maxima[k]}" if maxima.get(k) else "") for k, v in perf.items())
    doc = {"schema": "omha.status-check/1", "code": code, "state": STATE_NAMES[code], "summary": summary}
    doc["perfdata"] = perf
    emit(args, doc, f"OMHA {STATE_NAMES[code]} - {summary}" + (f" | {perfdata}" if perfdata else ""))
    return code


#: the operator commands: name, help, positional arguments (``"node?"``: optional), handler
OPERATOR_COMMANDS: tuple[tuple[str, str, tuple[str, ...], Callable[[argparse.Namespace], int]], ...] = (
    ("move", "prefer NODE for GROUP until unmove: it moves there if NODE can run it", ("group", "node"), cmd_move),
    ("unmove", "clear GROUP's preferred node (it stays where it runs)", ("group",), cmd_unmove),
    ("standby", "NODE stops its groups (they move) and is given none", ("node",), cmd_standby),
    ("unstandby", "NODE may run groups again", ("node",), cmd_unstandby),
    (
        "cleanup",
        "forget GROUP's failed tests and FAILED states (on NODE, or everywhere)",
        ("group", "node?"),
        cmd_cleanup,
    ),
)


def add_operator_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register move, unmove, standby, unstandby and cleanup on ``sub`` (an argparse subparsers action)."""
    for name, help_text, positionals, handler in OPERATOR_COMMANDS:
        p = sub.add_parser(name, parents=[common], help=help_text)
        for arg in positionals:
            if arg.endswith("?"):
                p.add_argument(arg[:-1], nargs="?")
            else:
                p.add_argument(arg)
        p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/schemas/)")
        p.set_defaults(func=handler)
