"""One node of the claims race: ``python -m omha_testing.claim_worker CONFIG READY GO OUT N``.

Opens the openmosix store for the omha.toml mapping CONFIG (JSON), touches READY, waits for GO to exist (so
that every worker starts at once), then claims groups ``g0`` .. ``g<N-1>`` and the fence lock of node 99 as
fast as it can, and writes what it got to OUT (JSON).
"""

from __future__ import annotations

import json
import os
import sys
import time

from omha_membership_openmosix.store import OpenMosixStore

from omha_core.config import validate_config
from omha_testing.mosix import plugin_manager


def main(argv: list[str]) -> int:
    raw, ready, go, out, count = json.loads(argv[1]), argv[2], argv[3], argv[4], int(argv[5])
    store = OpenMosixStore(validate_config(raw, "worker.toml", plugin_manager()))
    store.open()
    node = store.me
    with open(ready, "w"):
        pass
    deadline = time.monotonic() + 30
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.001)
    got = {f"g{i}": store.claim(f"g{i}", node, f"inc-{node}-{os.getpid()}") for i in range(count)}
    got["fence:99"] = store.fence_lock("99", "inc-x", node)
    with open(out + ".tmp", "w") as fh:
        json.dump(got, fh)
    os.rename(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
