"""What the openMosix kernel says: the node table under ``/proc/hpc`` and this node's number.

``<hpcbase>/nodes/`` holds one directory per configured node, named by its number; the integer in its
``status`` file has bit value 2 set while the kernel sees that node up (OpenMosix::HA's test, ``status & 2``).
Anything unreadable, vanished or garbled counts as down: the kernel's table is read every cycle and a node
leaving mid-read must never crash the daemon.

This node's number comes from a command (``mosctl whois`` prints ``This is MOSIX #32``): the first run of
digits in its output.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess

from omha_core.errors import ConfigError

log = logging.getLogger(__name__)

#: bit of ``/proc/hpc/nodes/N/status`` that means "up"
UP_BIT = 2
_DIGITS = re.compile(r"\d+")
#: seconds the whois command may take
WHOIS_TIMEOUT = 10.0


def is_node_name(name: str) -> bool:
    """True for an openMosix node name: a number (``1``, ``32``)."""
    return name.isascii() and name.isdigit()


def node_sort_key(name: str) -> tuple[int, str]:
    """Orders node names numerically (``2`` before ``10``); anything else after, by name."""
    return (int(name), name) if is_node_name(name) else (1 << 62, name)


def read_status(hpcbase: str, node: str) -> int | None:
    """The integer in ``<hpcbase>/nodes/<node>/status``, or None when it is missing, unreadable or garbage."""
    path = os.path.join(hpcbase, "nodes", node, "status")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(64)
    except OSError as exc:
        log.debug("%s: unreadable (%s): node counted down", path, exc.strerror)
        return None
    try:
        value = int(raw.split()[0]) if raw.split() else None
    except ValueError:
        value = None
    if value is None or value < 0:
        log.debug("%s: not a status number (%r): node counted down", path, raw[:20])
        return None
    return value


def node_table(hpcbase: str) -> dict[str, bool]:
    """Every node the kernel knows (numeric entries of ``<hpcbase>/nodes``) -> whether it is up.

    An unreadable ``nodes`` directory gives an empty table (everything down), never an exception.
    """
    nodes_dir = os.path.join(hpcbase, "nodes")
    try:
        names = os.listdir(nodes_dir)
    except OSError as exc:
        log.warning("%s: cannot list openMosix nodes (%s): every node counted down", nodes_dir, exc.strerror)
        return {}
    table = {}
    for name in sorted((n for n in names if is_node_name(n)), key=node_sort_key):
        status = read_status(hpcbase, name)
        table[name] = status is not None and bool(status & UP_BIT)
    return table


def up_nodes(hpcbase: str) -> set[str]:
    """The nodes the kernel sees up."""
    return {name for name, up in node_table(hpcbase).items() if up}


def parse_whois(output: str, command: str) -> str:
    """This node's number from the whois command's output: its first run of digits (``032`` -> ``32``)."""
    match = _DIGITS.search(output)
    if match is None:
        shown = output.strip()[:120] or "nothing"
        raise ConfigError(
            f"[openmosix] whois: {command!r} printed {shown!r}, which holds no node number "
            "(expected e.g. 'This is MOSIX #32'); fix the command or set node = \"<number>\" in omha.toml"
        )
    number = int(match.group())
    if number == 0:
        raise ConfigError(
            f"[openmosix] whois: {command!r} printed node number 0, which is not an openMosix node "
            '(is this node configured in the openMosix map?); set node = "<number>" in omha.toml to override'
        )
    return str(number)


def whois(command: str, timeout: float = WHOIS_TIMEOUT) -> str:
    """Run the whois command (split like a shell would, but not run by one) and return this node's number."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(f"[openmosix] whois: cannot split {command!r} into a command line: {exc}") from None
    if not argv:
        raise ConfigError("[openmosix] whois: empty command (expected e.g. 'mosctl whois')")
    hint = 'set node = "<number>" in omha.toml, or [openmosix] whois to a command that prints it'
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
    except FileNotFoundError:
        raise ConfigError(f"[openmosix] whois: {argv[0]!r} not found (is openMosix installed?); {hint}") from None
    except PermissionError:
        raise ConfigError(f"[openmosix] whois: {argv[0]!r} is not executable; {hint}") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"[openmosix] whois: {command!r} did not finish within {timeout:g} s; {hint}") from None
    if done.returncode != 0:
        err = done.stderr.strip().splitlines()
        why = f": {err[-1][:200]}" if err else ""
        raise ConfigError(f"[openmosix] whois: {command!r} exited with status {done.returncode}{why}; {hint}")
    return parse_whois(done.stdout, command)
