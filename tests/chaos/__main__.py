"""``python -m tests.chaos [--duration S] [--seed N] [--store sharedfs|etcd] [--vip] [--mount] [--keep DIR]``.

Runs one campaign (``make chaos`` runs this), prints the seed first, the figures at the end, and on a violation
the seed, the schedule and the timeline around each violation; exits 1 when any claim was violated.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from tests.chaos.run import campaign


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM or SIGHUP (a CI time-out, a closed terminal) ends a campaign as Ctrl-C does: it unwinds, so the
    campaign stops every daemon, group process, namespace, mount and etcd member it started. Further signals
    (a second Ctrl-C too) are ignored while it cleans up, which they would otherwise cut short."""
    for other in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=120.0, help="seconds of faults (default 120)")
    p.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: a random one, printed)")
    p.add_argument("--store", choices=("sharedfs", "etcd"), default="sharedfs")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--groups", type=int, default=3)
    p.add_argument("--vip", action="store_true", help="nodes in network namespaces, a group holding a VIP")
    p.add_argument("--mount", action="store_true", help="daemons in mount namespaces, a group mounting a loop "
                                                        "device through @mount")
    p.add_argument("--add", default="", help="comma-separated fault kinds added to the mix (store_full, "
                                             "netns_cut: not in the default mix)")
    p.add_argument("--netns", action="store_true", help="nodes in network namespaces reaching etcd over their own "
                                                        "links (for netns_cut; --store etcd only)")
    p.add_argument("--kinds", default="", help="comma-separated fault kinds (default: the default mix)")
    p.add_argument("--keep", default="", help="keep the records in this directory (default: a temp dir, removed "
                                               "unless a claim was violated)")
    p.add_argument("--json", default="", help="append the figures as one JSON line to this file")
    a = p.parse_args(argv)
    if a.vip and a.store == "etcd":
        p.error("--vip needs --store sharedfs (the nodes' network namespaces do not reach etcd on 127.0.0.1)")
    if a.netns and a.store != "etcd":
        p.error("--netns needs --store etcd")
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 2**31)
    base = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix=f"omha-chaos-{seed}-"))
    base.mkdir(parents=True, exist_ok=True)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # `nohup make chaos` keeps ignoring SIGHUP
            signal.signal(signum, _interrupted)
    try:
        rep = campaign(base, seed, a.duration, store=a.store, nodes=a.nodes, groups=a.groups,
                       kinds=[k for k in a.kinds.split(",") if k], vip=a.vip, mount=a.mount, netns=a.netns,
                       add=[k for k in a.add.split(",") if k])
    except KeyboardInterrupt:
        # the campaign's own finally has stopped its daemons, namespaces, mounts and etcd by now
        print(f"chaos: seed {seed} interrupted; everything it started is stopped", file=sys.stderr)
        if not a.keep:
            shutil.rmtree(base, ignore_errors=True)
        return 130
    if a.json:
        with open(a.json, "a") as fh:
            fh.write(json.dumps(rep.figures(a.store, a.duration)) + "\n")
    if rep.violations:
        print(f"records kept in {base}")
        return 1
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
