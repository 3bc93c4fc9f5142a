"""snmpsim variation module ``apc_outlet``: APC PDU outlets whose control and status objects move together.

A real APC PDU switches an outlet through one object and reports it through another (a Rack PDU writes
PowerNet-MIB ``rPDUOutletControlOutletCommand`` and reads ``rPDUOutletStatusOutletState``; older firmware
reads and writes ``sPDUOutletCtl``), and every one of them shows the same relay. snmpsim's ``writecache``
makes a single object writable, so this module keeps one state per outlet and per simulated PDU (snmpsim's
``agentContext`` is per data file) and lets every outlet object of that PDU read and change it.

A record names its role and outlet in its value, e.g.
``1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.3|2:apc_outlet|role=command,outlet=3,initial=on``:

- ``role=command`` (rPDUOutletControlOutletCommand): write 1 immediateOn, 2 immediateOff, 3 immediateReboot;
  reads 1 while the outlet is on, 2 while off (as the real agent does).
- ``role=state`` (rPDUOutletStatusOutletState): read-only, 1 on, 2 off.
- ``role=ctl`` (sPDUOutletCtl): read 1 on, 2 off; write 1 on, 2 off, 3 reboot.
- ``initial=on|off``: the state before the first command (every record of an outlet carries the same one).
- ``stuck=1``: the outlet accepts commands and never changes (a welded relay), for "never reaches the state".

Module options (``--variation-module-options=apc_outlet:delay=0.2,reboot=0.5``): ``delay``, the seconds a
relay takes to follow a command (so that a client must poll), and ``reboot``, how long a rebooted outlet stays
off. ``wiring=FILE`` (optional) says what each outlet powers: a JSON object ``{"COMMUNITY/OUTLET": "shell
command"}``, read at each switch-off; when a wired outlet's relay opens, its command runs to completion before
anybody can read the outlet as off, as a machine on that outlet is off the moment the relay opens (tests wire an
outlet to "kill every process of this node"). snmpsim loads this file with ``exec`` and provides
``moduleContext``, ``agentContext`` and ``recordContext`` as globals; it is not imported by the tests.
"""

import json
import os
import subprocess
import time
from typing import Any

from pysnmp.smi import error

ON, OFF = 1, 2
# writable roles: value written -> list of (offset from "after delay", state); reboot = off, then on
_COMMANDS = {1: "on", 2: "off", 3: "reboot"}


def _ctx(name: str) -> dict[Any, Any]:
    """The snmpsim-provided context dict ``name`` (a global injected by snmpsim's loader)."""
    context: dict[Any, Any] = globals()[name]
    return context


def init(**context: Any) -> None:
    """Read the module options: ``delay`` and ``reboot`` in seconds."""
    settings: dict[str, Any] = {"delay": 0.2, "reboot": 0.5, "wiring": None}
    for item in (context.get("options") or "").split(","):
        if "=" in item:
            key, value = item.split("=", 1)
            settings[key.strip()] = value if key.strip() == "wiring" else float(value)
    _ctx("moduleContext")["settings"] = settings


def _record_settings(value: Any) -> dict[str, str]:
    record = _ctx("recordContext")
    if "settings" not in record:
        record["settings"] = dict(item.split("=", 1) for item in str(value).split(",") if "=" in item)
    settings: dict[str, str] = record["settings"]
    return settings


def _power_cut(pdu: str, number: int) -> None:
    """Run what the wiring file says outlet ``number`` of ``pdu`` powers off (nothing when it is not wired)."""
    wiring = _ctx("moduleContext")["settings"].get("wiring")
    if not wiring:
        return
    try:
        with open(wiring) as fh:
            command = json.load(fh).get(f"{pdu}/{number}")
    except (OSError, ValueError):
        return
    if command:
        subprocess.run(command, shell=True, timeout=60, check=False)


def _outlet(settings: dict[str, str], pdu: str = "") -> dict[str, Any]:
    """This PDU's state of the record's outlet, with due relay changes applied."""
    outlets = _ctx("agentContext").setdefault("outlets", {})
    number = int(settings["outlet"])
    outlet: dict[str, Any] | None = outlets.get(number)
    if outlet is None:
        outlet = {
            "state": ON if settings.get("initial", "on") == "on" else OFF,
            "pending": [],
            "stuck": settings.get("stuck") == "1",
        }
        outlets[number] = outlet
    now = time.monotonic()
    while outlet["pending"] and outlet["pending"][0][0] <= now:
        state = outlet["pending"].pop(0)[1]
        if state == OFF and outlet["state"] != OFF:
            _power_cut(pdu, number)
        outlet["state"] = state
    return outlet


def _command(outlet: dict[str, Any], command: str) -> None:
    if outlet["stuck"]:
        return
    opts = _ctx("moduleContext")["settings"]
    due = time.monotonic() + opts["delay"]
    if command == "on":
        outlet["pending"] = [(due, ON)]
    elif command == "off":
        outlet["pending"] = [(due, OFF)]
    else:
        outlet["pending"] = [(due, OFF), (due + opts["reboot"], ON)]


def variate(oid: Any, tag: str, value: Any, **context: Any) -> tuple[Any, str, Any]:
    """Answer a GET/GETNEXT with the outlet's state; apply a SET as a relay command."""
    if not context["nextFlag"] and not context["exactMatch"]:
        return context["origOid"], tag, context["errorStatus"]
    settings = _record_settings(value)
    outlet = _outlet(settings, os.path.splitext(os.path.basename(str(context.get("dataFile", ""))))[0])
    idx = max(0, context["varsTotal"] - context["varsRemaining"] - 1)
    if context["setFlag"]:
        if settings.get("role") == "state":
            raise error.NotWritableError(name=oid, idx=idx)
        try:
            command = _COMMANDS[int(context["origValue"])]
        except Exception:  # a string, an unknown command number
            raise error.WrongValueError(name=oid, idx=idx) from None
        _command(outlet, command)
        return oid, tag, context["origValue"]
    from snmpsim.grammar.snmprec import SnmprecGrammar

    return oid, tag, SnmprecGrammar.TAG_MAP[tag](outlet["state"])


def shutdown(**context: Any) -> None:
    """Nothing to release: the state lives in memory."""
