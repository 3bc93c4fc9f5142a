"""The cluster commands of the ``omha`` CLI: daemon, status, tell, load, show, shutdown, fence, demo.

They work on any machine that has the configuration: they go through the configured store, whether or not a
daemon runs locally (``shutdown`` is the exception: it talks to this machine's daemon).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from omha_core.cli_common import emit, guard, open_store, setup
from omha_core.control import tell as tell

if TYPE_CHECKING:
    from omha_core.backends import Versioned


@guard
def cmd_daemon(args: argparse.Namespace) -> int:
    from omha_core.node import run_daemon

    config, pm = setup(args)
    return run_daemon(config, pm)


@guard
def cmd_status(args: argparse.Namespace) -> int:
    import json

    from omha_core.report import cluster_report, format_report

    if args.check:
        from omha_core.cli_operator import status_check

        return status_check(args)
    config, pm = setup(args, registrations_only=True)  # the store's backend is all it needs of the plugins
    store = open_store(config, pm)
    while True:
        rep = cluster_report(store, config.cluster_name, float(config.timing["dead_after"]))
        if args.json:
            print(json.dumps(rep, indent=2, sort_keys=True))
        else:
            if args.watch:
                print("\x1b[H\x1b[2J", end="")
            print(format_report(rep))
        if not args.watch:
            return 0
        sys.stdout.flush()
        time.sleep(args.interval)


@guard
def cmd_tell(args: argparse.Namespace) -> int:
    from omha_core.cli_operator import wait_for_level

    config, pm = setup(args)
    store = open_store(config, pm)
    version = tell(store, args.group, args.level)
    out: dict[str, Any] = {"schema": "omha.tell/1", "group": args.group, "level": args.level, "version": version}
    out["wait"] = wait_for_level(store, config, args.group, args.level, args.timeout) if args.wait else None
    text = f"{args.group}: wanted level {args.level} (hactl version {version})"
    if out["wait"] is not None:
        w = out["wait"]
        where = f"on {', '.join(w['nodes'])}" if w["nodes"] else "everywhere stopped"
        result = f"at level {args.level} {where}" if w["reached"] else f"{w['reason']}: {w['message']}"
        text += f"\n{args.group}: {result}"
    emit(args, out, text)
    if out["wait"] is not None and not out["wait"]["reached"]:
        if not args.json:
            print(f"omha tell: {args.group} did not reach {args.level}: {out['wait']['message']}", file=sys.stderr)
        return 1
    return 0


@guard
def cmd_load(args: argparse.Namespace) -> int:
    from omha_core.errors import ParseError
    from omha_core.validate import check_document

    config, pm = setup(args)
    store = open_store(config, pm)
    if not args.cltab and not args.hactl:
        print("omha load: give --cltab and/or --hactl", file=sys.stderr)
        return 2
    texts = {}
    warnings: list[Any] = []
    out: dict[str, Any] = {"schema": "omha.load/1", "ok": False, "published": {}, "errors": []}
    try:
        for name, path in (("cltab", args.cltab), ("hactl", args.hactl)):
            if path:
                with open(path, "rb") as fh:  # bytes: the check names the line of a byte that is not UTF-8
                    data = fh.read()
                check_document(name, data, path, pm, config, warnings)
                texts[name] = data.decode("utf-8")
        for warning in warnings:  # what the original accepted but is sloppy (a group alone on its hactl line...)
            print(f"warning: {warning}", file=sys.stderr)
    except ParseError as exc:
        out["errors"] = [str(p) for p in exc.problems]
        print(exc, file=sys.stderr)
    except OSError as exc:
        out["errors"] = [f"{exc.filename}: {exc.strerror}"]
        print(f"omha load: {exc.filename}: {exc.strerror}", file=sys.stderr)
    if out["errors"]:
        print("omha load: nothing published", file=sys.stderr)
        emit(args, out, "") if args.json else None
        return 1
    lines = []
    for name, text in texts.items():
        current = store.documents(name)
        out["published"][name] = store.put_document(name, text, current[0].version if current else "")
        lines.append(f"{name}: published version {out['published'][name]}")
    out["ok"] = True
    emit(args, out, "\n".join(lines))
    return 0


@guard
def cmd_show(args: argparse.Namespace) -> int:
    import json

    from omha_core.errors import ParseError
    from omha_core.report import adopted_version
    from omha_core.validate import check_document

    config, pm = setup(args)
    store = open_store(config, pm)
    running, observer = adopted_version(store, args.what)
    newest_valid: Versioned | None = None
    shown: Versioned | None = None
    skipped: list[dict[str, Any]] = []
    for doc in store.documents(args.what):
        try:
            check_document(args.what, doc.text, doc.origin or args.what, pm, config)
        except ParseError as exc:
            print(f"# skipped invalid version {doc.version} ({doc.origin}):", file=sys.stderr)
            print(exc, file=sys.stderr)
            skipped.append({"version": doc.version, "origin": doc.origin, "errors": [str(p) for p in exc.problems]})
            continue
        newest_valid = newest_valid or doc
        if running is None or doc.version == running:
            shown = doc
            break
    shown = shown or newest_valid  # the version the daemons run is gone from the store: the newest valid one
    if shown is None:
        print(f"omha show: no valid {args.what} in the store", file=sys.stderr)
        return 1
    where = f"the version {observer} runs" if shown.version == running else "not adopted by any daemon yet"
    if args.json:
        newer = newest_valid.version if newest_valid is not None and newest_valid.version != shown.version else None
        out = {"schema": "omha.show/1", "what": args.what, "version": shown.version, "origin": shown.origin}
        out.update(adopted=shown.version == running, observer=observer, newer_valid=newer, skipped=skipped)
        print(json.dumps({**out, "text": shown.text}, indent=2, sort_keys=True))
        return 0
    print(f"# {args.what} version {shown.version} ({shown.origin}): {where}", file=sys.stderr)
    if newest_valid is not None and newest_valid.version != shown.version:
        print(f"# a newer valid version {newest_valid.version} is in the store, not adopted yet", file=sys.stderr)
    print(shown.text, end="" if shown.text.endswith("\n") else "\n")
    return 0


def control(path: str, cmd: str, timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to a daemon's control socket and return its reply."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data or b"{}")
    return reply


@guard
def cmd_shutdown(args: argparse.Namespace) -> int:
    from omha_core.errors import OmhaError

    config, _ = setup(args)
    try:
        control(config.socket_path, "shutdown")
    except OSError as exc:
        raise OmhaError(f"no daemon answers on {config.socket_path}: {exc.strerror or exc}") from None
    out: dict[str, Any] = {"schema": "omha.shutdown/1", "node": config.node, "requested": True, "stopped": None}
    if args.wait:
        deadline = time.monotonic() + args.timeout
        out["stopped"] = False
        while time.monotonic() < deadline:
            try:
                control(config.socket_path, "status", 1.0)
            except OSError:
                out["stopped"] = True
                break
            time.sleep(0.1)
        if not out["stopped"]:
            print(f"omha shutdown: {config.node} still running after {args.timeout:g} s", file=sys.stderr)
            if args.json:
                emit(args, out, "")
            return 1
    emit(args, out, f"{config.node}: " + ("stopped" if out["stopped"] else "shutdown requested"))
    return 0


@guard
def cmd_fence(args: argparse.Namespace) -> int:
    import json

    from omha_core.errors import OmhaError
    from omha_core.fencing import build_devices, fence_levels, secret_values

    config, pm = setup(args)
    devices = [d for d in build_devices(config, pm) if args.node in d.nodes]
    if not devices:
        raise OmhaError(f"no fence device covers node {args.node!r} (see [[fencing.devices]] nodes)")
    secrets = secret_values(config)
    if args.json:
        from omha_core.fence_json import fence_json

        doc = fence_json(devices, args.node, args.action, secrets)
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0 if doc["ok"] else 1
    if args.action in ("status", "list"):
        return _fence_query(devices, args.node, args.action, secrets)

    def overrun(note: str) -> None:
        print(f"omha fence: {note}", file=sys.stderr)

    # an operator's action is done as asked: a device's own action only replaces the daemon's automatic one
    outcome = fence_levels(devices, args.node, args.action, secrets, overrun, explicit=True)
    for err in outcome.errors:
        print(f"failed: {err}", file=sys.stderr)
    result, dev = outcome.result, outcome.device
    if result is None or dev is None:
        print(f"{args.node}: {args.action} FAILED on every device", file=sys.stderr)
        return 1
    state = f", state {result.state}" if result.state else ""
    done = f"{args.node}: {outcome.action} done by {dev.name}{state}"
    print(f"{done}; {_verified(result, dev)}. {result.message}".rstrip())
    return 0


def _verified(result: Any, dev: Any) -> str:
    """``verified``, or ``not verified (why)``: the device's own reason, else what its kind allows."""
    if result.verified:
        return "verified"
    why = result.unverified_reason or (
        "the device did not read the state back"
        if dev.device.can_verify
        else f"devices of kind {dev.kind!r} cannot read the state back"
    )
    return f"not verified ({why})"


def _fence_query(devices: list[Any], node: str, action: str, secrets: list[str]) -> int:
    """``omha fence NODE --action status|list``: every device that covers ``node`` answers, one block each.
    Exit status 0 when at least one device answered."""
    from omha_core.fencing import query_device

    answered = False
    for dev in devices:
        answer = query_device(dev, action, node, secrets)
        head = f"{dev.name} ({dev.kind}), {node} on {', '.join(dev.nodes[node])}"
        if not answer.ok:
            word = "not supported" if not answer.supported else "FAILED"
            print(f"{head}: {action} {word}: {answer.message}", file=sys.stderr)
            continue
        answered = True
        if action == "status" and answer.result is not None:
            res = answer.result
            verified = "read back" if res.verified else "not read back"
            print(f"{head}: state {res.state or 'unknown'} ({verified}). {res.message}".rstrip())
            continue
        mine = set(dev.nodes[node])
        print(f"{head}: {len(answer.targets)} targets")
        for t in answer.targets:
            mark = f"  <- {node}" if t.id in mine or (t.name and t.name in mine) else ""
            print(f"  {t.id:>6}  {t.name or '-':<28} {t.state or 'unknown':<8}{mark}".rstrip())
    return 0 if answered else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from omha_core.demo import run_demo

    return run_demo(keep=args.keep, freeze=args.freeze)


def add_cluster_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the cluster subcommands on ``sub`` (an argparse subparsers action); ``common`` holds the
    options every subcommand takes (``-c``)."""
    json_help = "machine-readable output (schema in docs/schemas/)"
    p = sub.add_parser("daemon", parents=[common], help="run this node's daemon in the foreground")
    p.set_defaults(func=cmd_daemon)

    p = sub.add_parser("status", parents=[common], help="nodes, quorum and groups at a glance (like crm_mon)")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/schemas/)")
    p.add_argument("--watch", action="store_true", help="redraw until interrupted")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between redraws with --watch")
    p.add_argument(
        "--check",
        action="store_true",
        help="Nagios/Icinga plugin: one line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "tell", parents=[common], help="set a group's wanted level cluster-wide (LEVEL 'stop' stops it everywhere)"
    )
    p.add_argument("group")
    p.add_argument("level")
    p.add_argument("--wait", action="store_true", help="return once the group is at LEVEL somewhere (or stopped)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds --wait waits at most (default 60)")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=cmd_tell)

    p = sub.add_parser("load", parents=[common], help="validate and publish a new cltab and/or hactl")
    p.add_argument("--cltab")
    p.add_argument("--hactl")
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("show", parents=[common], help="print the cltab or hactl in force")
    p.add_argument("what", choices=["cltab", "hactl"])
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("shutdown", parents=[common], help="stop this node's groups and its daemon")
    p.add_argument("--wait", action="store_true", help="wait until the daemon has exited")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=cmd_shutdown)

    p = sub.add_parser("fence", parents=[common], help="fence a node by hand through the configured devices")
    p.add_argument("node")
    p.add_argument(
        "--action",
        choices=["off", "on", "reboot", "status", "list"],
        default="reboot",
        help="off/on/reboot: the first device (level) that succeeds; status: what every device covering NODE "
        "reads; list: every target (outlet, plug) of those devices, NODE's marked",
    )
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=cmd_fence)

    p = sub.add_parser(
        "demo", parents=[common], help="three nodes on this machine: start, fail one, watch the group move"
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--freeze", action="store_true", help="SIGSTOP the web node instead of SIGKILL: only fencing saves the day"
    )
    p.set_defaults(func=cmd_demo)
