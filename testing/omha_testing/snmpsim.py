"""A real SNMP agent for power-strip tests: snmpsim serving APC PDU recordings with switchable outlets.

Reusable outside this folder (benchmarks, multi-node tests)::

    from omha_testing.snmpsim import start_simulator
    sim = start_simulator(tmp_dir)          # returns once the agent answers
    try:
        opts = sim.options("apc-8641")      # {"host": "127.0.0.1", "port": ..., "community": "apc-8641"}
        ...                                 # e.g. kind = "apc_snmp" with these options, nodes = {n2 = "5"}
        assert sim.outlet_state("apc-8641", 5) == "off"
    finally:
        sim.stop()

The recordings are the APC PDUs shipped in ``snmpsim-data`` (``UPS/apc-7902b``, ``UPS/apc-8641``,
``UPS/apc-8932``), copied into ``tmp_dir`` with their outlet objects handed to the ``apc_outlet`` variation
module (``snmpsim_variation/apc_outlet.py``), which ties each outlet's control and status objects together.
Each simulated PDU is addressed by its SNMP community (snmpsim's rule: the data file's name):

- ``apc-7902b``: AP7902B, sysObjectID .1.3.6.1.4.1.318.1.3.4.8 (unknown to fence_apc_snmp: MasterSwitch MIB)
- ``apc-8641``, ``apc-8932``: AP8641 / AP8932, sysObjectID ...318.1.3.4.6 (MasterSwitch, firmware v6)
- ``apc-8641-rpdu``: the AP8641 recording announcing ...318.1.3.4.5, the Rack PDU model
- ``private``: a second AP8932, for the default community

On every PDU outlet ``STUCK_OUTLET`` is a welded relay: on, and it accepts commands without ever changing.
SNMPv3 (context name = the community above) is served for user ``V3_USER`` with SHA/AES keys ``V3_AUTH_KEY``
and ``V3_PRIV_KEY``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
RACK_PDU_SYS_OBJECT_ID = "1.3.6.1.4.1.318.1.3.4.5"
STUCK_OUTLET = 13
V3_USER = "omha"
V3_AUTH_KEY = "auth-Key-1234"
V3_PRIV_KEY = "priv-Key-5678"

# community -> (recording in snmpsim-data's UPS/ folder, sysObjectID to announce instead, or None)
PDUS: dict[str, tuple[str, str | None]] = {
    "apc-7902b": ("apc-7902b", None),
    "apc-8641": ("apc-8641", None),
    "apc-8932": ("apc-8932", None),
    "apc-8641-rpdu": ("apc-8641", RACK_PDU_SYS_OBJECT_ID),
    "private": ("apc-8932", None),
}

# outlet column (OID prefix, the outlet number follows) -> role in the apc_outlet variation module
_OUTLET_COLUMNS = {
    "1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.": "command",  # rPDUOutletControlOutletCommand
    "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.": "state",  # rPDUOutletStatusOutletState
    "1.3.6.1.4.1.318.1.1.4.4.2.1.3.": "ctl",  # sPDUOutletCtl
}
_STATUS_PREFIX = "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4."
_VARIATION_DIR = Path(__file__).with_name("snmpsim_variation")


@dataclass
class Simulator:
    """A running snmpsim; :meth:`stop` ends it (idempotent)."""

    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]
    communities: tuple[str, ...] = field(default=tuple(PDUS))

    def options(self, community: str, **extra: Any) -> dict[str, Any]:
        """Options of an ``apc_snmp`` device for the PDU served under ``community``."""
        return {"host": self.host, "port": self.port, "community": community, **extra}

    def outlet_state(self, community: str, outlet: int) -> str:
        """``"on"`` or ``"off"``: the outlet as the PDU reports it (rPDUOutletStatusOutletState, read directly)."""
        value = snmp_get(self.host, self.port, community, f"{_STATUS_PREFIX}{outlet}")
        return {"1": "on", "2": "off"}.get(value, f"unknown ({value})")

    @property
    def log(self) -> str:
        """The simulator's log so far (for failure messages)."""
        try:
            return (self.workdir / "snmpsim.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the simulator's process group, killing it if it does not exit within 5 s."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def recordings_dir() -> Path:
    """The ``UPS`` folder of the installed ``snmpsim-data`` package."""
    import snmpsim_data

    return Path(snmpsim_data.__file__).parent / "data" / "UPS"


def responder_command() -> str:
    """The ``snmpsim-command-responder`` beside this interpreter, else on PATH."""
    here = Path(sys.executable).with_name("snmpsim-command-responder")
    if here.exists():
        return str(here)
    found = shutil.which("snmpsim-command-responder")
    if not found:
        raise RuntimeError("snmpsim-command-responder not found: pip install 'omha-fence-powerstrip[test]'")
    return found


def write_recording(source: Path, dest: Path, sys_object_id: str | None, stuck_outlet: int | None) -> None:
    """Copy a recording, handing its outlet objects to ``apc_outlet`` and optionally replacing sysObjectID."""
    lines = source.read_text(encoding="iso-8859-1").splitlines()
    initial: dict[str, str] = {}
    for line in lines:
        oid, _tag, value = line.split("|", 2)
        if oid.startswith(_STATUS_PREFIX):
            initial[oid[len(_STATUS_PREFIX) :]] = "on" if value == "1" else "off"
    out = []
    for line in lines:
        oid, _tag, value = line.split("|", 2)
        if oid == SYS_OBJECT_ID and sys_object_id:
            line = f"{oid}|6|{sys_object_id}"
        for prefix, role in _OUTLET_COLUMNS.items():
            outlet = oid[len(prefix) :]
            if oid.startswith(prefix) and outlet.isdigit():
                state = initial.get(outlet, "on" if value == "1" else "off")
                extra = ""
                if stuck_outlet is not None and int(outlet) == stuck_outlet:
                    state, extra = "on", ",stuck=1"
                line = f"{oid}|2:apc_outlet|role={role},outlet={outlet},initial={state}{extra}"
        out.append(line)
    dest.write_text("\n".join(out) + "\n", encoding="iso-8859-1")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ipv6_loopback_free(port: int) -> bool:
    """True when this machine has ::1 and ``port`` is free on it (then the agent listens there too)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", port))
        return True
    except OSError:
        return False


def start_simulator(
    workdir: Path | str,
    *,
    delay: float = 0.2,
    reboot: float = 0.5,
    stuck_outlet: int | None = STUCK_OUTLET,
    startup_timeout: float = 30.0,
    wiring: Path | None = None,
) -> Simulator:
    """Start snmpsim on 127.0.0.1 (a free UDP port; the same port on ::1 too where the machine has it)
    serving :data:`PDUS`; return once it answers.

    :param workdir: an empty directory for the data, index cache and log (removed by the caller).
    :param delay: seconds an outlet takes to follow a command (clients must poll for the new state).
    :param reboot: seconds a rebooted outlet stays off.
    :param stuck_outlet: the outlet number that never changes state, or None.
    :param wiring: a JSON file ``{"COMMUNITY/OUTLET": "shell command"}``: what each outlet powers; the command
        runs when the outlet's relay opens, before the outlet reads as off (see ``apc_outlet``).
    """
    workdir = Path(workdir)
    data, cache, variation = workdir / "data", workdir / "cache", workdir / "variation"
    for d in (data, cache, variation):
        d.mkdir(parents=True, exist_ok=True)
    for community, (recording, sys_object_id) in PDUS.items():
        write_recording(
            recordings_dir() / f"{recording}.snmprec", data / f"{community}.snmprec", sys_object_id, stuck_outlet
        )
    shutil.copy(_VARIATION_DIR / "apc_outlet.py", variation / "apc_outlet.py")
    import snmpsim

    # the recordings' outlet names use snmpsim's own writecache module
    shutil.copy(Path(snmpsim.__file__).parent / "variation" / "writecache.py", variation / "writecache.py")
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["SNMPSIM_ALLOW_ROOT"] = "true"
    last_error = ""
    for _attempt in range(3):
        port = _free_udp_port()
        cmd = [
            responder_command(),
            f"--data-dir={data}",
            f"--cache-dir={cache}",
            f"--variation-modules-dir={variation}",
            f"--variation-module-options=apc_outlet:delay={delay},reboot={reboot}"
            + (f",wiring={wiring}" if wiring else ""),
            f"--agent-udpv4-endpoint=127.0.0.1:{port}",
            *([f"--agent-udpv6-endpoint=[::1]:{port}"] if _ipv6_loopback_free(port) else []),
            f"--v3-user={V3_USER}",
            f"--v3-auth-key={V3_AUTH_KEY}",
            "--v3-auth-proto=SHA",
            f"--v3-priv-key={V3_PRIV_KEY}",
            "--v3-priv-proto=AES",
        ]
        with open(workdir / "snmpsim.log", "wb") as log:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        sim = Simulator("127.0.0.1", port, workdir, proc)
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                snmp_get(sim.host, sim.port, "apc-8641", SYS_OBJECT_ID, timeout=0.5)
                return sim
            except OSError:
                time.sleep(0.1)
        sim.stop()
        last_error = sim.log[-2000:]
    raise RuntimeError(f"snmpsim did not start on 127.0.0.1; its log ends with:\n{last_error}")


def snmp_get(host: str, port: int, community: str, oid: str, timeout: float = 1.0) -> str:
    """One SNMPv2c GET with pysnmp, independent of the plugin under test; OSError when nothing answers."""
    return asyncio.run(_snmp_request(host, port, community, oid, None, timeout))


def snmp_set_string(host: str, port: int, community: str, oid: str, value: str, timeout: float = 1.0) -> str:
    """One SNMPv2c SET of an OCTET STRING (renaming an outlet), independent of the plugin under test."""
    return asyncio.run(_snmp_request(host, port, community, oid, value, timeout))


async def _snmp_request(host: str, port: int, community: str, oid: str, value: str | None, timeout: float) -> str:
    from pyasn1.type import univ
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import cmdgen
    from pysnmp.proto import rfc1902

    eng = engine.SnmpEngine()
    try:
        config.add_v1_system(eng, "fixture", community)
        config.add_target_parameters(eng, "fixture-params", "fixture", "noAuthNoPriv", 1)
        config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_client_mode())
        config.add_target_address(
            eng,
            "fixture-target",
            udp.DOMAIN_NAME,
            (host, port),
            "fixture-params",
            timeout=int(timeout * 100),
            retryCount=0,
        )
        done: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        def callback(*args: Any) -> None:
            if not done.done():
                done.set_result(args[2:6])

        payload = univ.Null("") if value is None else rfc1902.OctetString(value)
        generator = cmdgen.GetCommandGenerator() if value is None else cmdgen.SetCommandGenerator()
        generator.send_varbinds(eng, "fixture-target", None, "", [(rfc1902.ObjectName(oid), payload)], callback)
        error_indication, error_status, _index, var_binds = await done
        if error_indication:
            raise OSError(f"SNMP {host}:{port}: {error_indication}")
        if error_status:
            raise OSError(f"SNMP {host}:{port}: {error_status.prettyPrint()}")
        return str(var_binds[0][1].prettyPrint())
    finally:
        eng.close_dispatcher()
