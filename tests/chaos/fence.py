"""The campaign's fence device: ``python fence.py BASE ACTION NODE``, a ``command`` device's command.

``off`` and ``reboot`` "pull the plug" synchronously (:func:`omha_core.localcluster.power_off`: the daemon, its
guard and every process of the node SIGKILLed, and gone, before it exits 0); ``on`` does nothing (the campaign
powers nodes on itself, by starting their daemons); ``status`` prints ``on`` or ``off`` from /proc. With
``--vip`` an ``off`` also flushes the node's network namespace's addresses and sets its link down, as a node
losing power does. Every call is logged to ``BASE/chaos/fence.log`` (one JSON line at the start and one at the
end) for the checker.

A fence fault is injected by a file ``BASE/chaos/fence-fault.NODE`` holding ``fail`` (exit 1, the node left
alone), ``hang`` (sleep past the device's timeout, the node left alone) or ``lie`` (exit 0 without powering the
node off, and read back "off": a broken device, used to show that the checker catches what follows).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from omha_core.localcluster import _cluster_name, _running, node_processes, power_off

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find tests.chaos.lan
from tests.chaos.lan import power_off_network


def log(base: Path, **fields: object) -> None:
    fields.update(pid=os.getpid(), mono=time.monotonic(), wall=time.time())
    fd = os.open(base / "chaos" / "fence.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(fields) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str]) -> int:
    base, action, node = Path(argv[1]), argv[2], argv[3]
    fault_file = base / "chaos" / f"fence-fault.{node}"
    fault = fault_file.read_text().strip() if fault_file.exists() else ""
    if action == "status":
        alive = fault != "lie" and any(_running(p) for p in node_processes(_cluster_name(base, node), node))
        print("on" if alive else "off")
        return 0
    log(base, ev="fence_begin", node=node, action=action)
    if fault == "hang":
        log(base, ev="fence_hang", node=node, action=action)
        time.sleep(3600)
    ok = fault == "lie" or (fault != "fail" and (action == "on" or power_off(base, node)))
    netns = base / "chaos" / f"netns.{node}"
    if ok and fault != "lie" and action != "on" and netns.exists():
        power_off_network(netns.read_text().strip())  # powered off: no address answers any more
    log(base, ev="fence_end", node=node, action=action, ok=ok, fault=fault)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
