"""Run one fence action in a fresh process and print its result as JSON: ``python run_device.py SPEC``.

``SPEC`` is JSON: ``{"kind": "x10_cm17a", "name": "rf", "options": {...}, "action": "off", "targets": [...]}``.
The device class comes from the installed plugin through the plugin manager, as the daemon finds it. Tests
use a separate process where the process itself must differ: under the LD_PRELOAD line monitor, or as an
unprivileged user.
"""

from __future__ import annotations

import json
import sys

from omha_core.plugins import get_plugin_manager, lookup


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    cls = lookup(get_plugin_manager(), "omha_fence_devices", spec["kind"], "fence device kind")
    device = cls(spec.get("name", "x10"), spec["options"])
    result = device.fence(spec["action"], spec["targets"])
    print(json.dumps({"ok": result.ok, "verified": result.verified, "message": result.message, "state": result.state}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
