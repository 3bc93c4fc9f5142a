"""``omha demo``: three nodes on this machine, a real failover, then clean-up.

It writes a cltab with a web group (a fitness test, then a respawning HTTP server on 127.0.0.1) and a second
group, starts three ``omha daemon`` processes on a temporary shared directory, shows the status, kills the node
running the web group with SIGKILL (``--freeze``: freezes it with SIGSTOP, so its server keeps running), lets
the others fence it through a ``command`` device that kills the node's processes (the "power off"), and shows
the group move and the page served again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from omha_core.errors import OmhaError
from omha_core.localcluster import LocalCluster, fence_device
from omha_core.report import format_report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fetch(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return str(resp.read().decode().strip())
    except OSError as exc:
        return f"(no answer: {exc})"


def _say(text: str = "") -> None:
    print(text, flush=True)


def run_demo(keep: bool = False, freeze: bool = False) -> int:
    """Run the demo; return 0 when the web group failed over, 1 otherwise.

    :param freeze: SIGSTOP the web node instead of SIGKILLing it: its server keeps running, so only fencing
        makes the takeover safe.
    """
    tmp = Path(tempfile.mkdtemp(prefix="omha-demo-"))
    port = _free_port()
    www = tmp / "www"
    cltab = f"""# omha demo cltab: group:tag:runlevels:mode:command
# web: a fitness test, then an HTTP server that says which node serves it
web:fit:test:test:test -d {tmp}
web:page:run:wait:mkdir -p {www}/$OMHA_NODE && echo "hello from $OMHA_NODE" > {www}/$OMHA_NODE/index.html
web:http:run:respawn:exec {sys.executable} -m http.server {port} --bind 127.0.0.1 -d {www}/$OMHA_NODE
# db: a second group, spread to another node
db:daemon:run:respawn:exec sleep 100000
"""
    names = ["n1", "n2", "n3"]
    cluster = LocalCluster(
        tmp,
        names,
        cltab=cltab,
        hactl="web run\ndb run\n",
        # omha's default timings, and a fence device that "pulls the plug" of a local node
        config={
            "cluster": {"name": f"demo-{os.getpid()}"},
            "timing": {"heartbeat": 0.5, "dead_after": 2.0, "settle": 2.0},
            "fencing": {"action": "off"},
        },
        devices=[fence_device(tmp, names)],
    )
    ok = False
    try:
        _say(f"omha demo: three nodes (n1, n2, n3) sharing {cluster.shared}")
        _say(f"cltab:\n{cltab}hactl:\n  web run\n  db run\n")
        cluster.start()
        web = cluster.wait_for("web to start", lambda: cluster.running("web"), 60)[0]
        cluster.wait_for("db to start", lambda: cluster.running("db"), 60)
        _say(format_report(cluster.report()))
        cluster.wait_for("the page", lambda: "hello from" in _fetch(port), 20)  # the server may still be binding
        _say(f"\nGET http://127.0.0.1:{port}/ -> {_fetch(port)}")
        if freeze:
            _say(f"\nFreezing {web} with SIGSTOP: its daemon stops heartbeating but its HTTP server keeps running.")
            _say("The others must fence it (power it off) before starting web elsewhere...")
        else:
            _say(f"\nKilling {web}'s daemon with SIGKILL: its guard kills everything it ran, as if the node died.")
            _say("The others fence it (power it off, to be sure) and start web elsewhere...")
        t0 = time.monotonic()
        cluster.kill(web, signal.SIGSTOP if freeze else signal.SIGKILL)
        new = cluster.wait_for("web to move", lambda: [n for n in cluster.running("web") if n != web], 60)[0]
        took = time.monotonic() - t0
        cluster.wait_for("the page", lambda: "hello from" in _fetch(port), 20)
        rec = cluster.fence_record(web)
        _say(f"{web} fenced by {rec.get('by')} through device {rec.get('device')} ({rec.get('action')})")
        _say(f"web moved from {web} to {new} in {took:.1f} s\n")
        _say(format_report(cluster.report()))
        _say(f"\nGET http://127.0.0.1:{port}/ -> {_fetch(port)}")
        ok = new != web
    except (AssertionError, OmhaError) as exc:
        _say(f"demo failed: {exc}")
    finally:
        _say("\nStopping the cluster...")
        cluster.stop()
        if keep:
            _say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    _say("demo OK: the web group failed over" if ok else "demo FAILED")
    return 0 if ok else 1
