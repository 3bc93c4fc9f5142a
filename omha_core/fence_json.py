"""``omha fence NODE --json``: the same work as the text output, as one ``omha.fence/1`` document.

``action`` ``off``/``on``/``reboot`` fills ``done`` (the device that succeeded, or null) and ``errors`` (each
device that failed before, scrubbed of secrets); ``status``/``list`` fill ``devices`` (every device covering the
node, with its answer). ``ok`` is the exit status's meaning: the action was done, or some device answered.
"""

from __future__ import annotations

import sys
from typing import Any


def fence_json(devices: list[Any], node: str, action: str, secrets: list[str]) -> dict[str, Any]:
    """Carry out ``action`` on ``node`` through ``devices`` and describe the outcome."""
    from omha_core.fencing import fence_levels, query_device

    doc: dict[str, Any] = {"schema": "omha.fence/1", "node": node, "action": action, "ok": False}
    doc.update(done=None, errors=[], devices=[])
    if action in ("status", "list"):
        for dev in devices:
            answer = query_device(dev, action, node, secrets)
            res = answer.result
            mine = set(dev.nodes[node])
            doc["devices"].append(
                {
                    "device": dev.name,
                    "kind": dev.kind,
                    "ports": list(dev.nodes[node]),
                    "ok": answer.ok,
                    "supported": answer.supported,
                    "message": answer.message or (res.message if res else ""),
                    "state": res.state if res else None,
                    "verified": bool(res.verified) if res else False,
                    "targets": [
                        {"id": t.id, "name": t.name, "state": t.state, "mine": t.id in mine or t.name in mine}
                        for t in answer.targets
                    ],
                }
            )
        doc["ok"] = any(d["ok"] for d in doc["devices"])
        return doc

    def overrun(note: str) -> None:
        print(f"omha fence: {note}", file=sys.stderr)

    outcome = fence_levels(devices, node, action, secrets, overrun, explicit=True)
    doc["errors"] = list(outcome.errors)
    if outcome.result is not None and outcome.device is not None:
        res = outcome.result
        doc["ok"] = True
        doc["done"] = {
            "device": outcome.device.name,
            "kind": outcome.device.kind,
            "action": outcome.action,
            "state": res.state,
            "verified": bool(res.verified),
            "unverified_reason": res.unverified_reason,
            "message": res.message,
        }
    return doc
