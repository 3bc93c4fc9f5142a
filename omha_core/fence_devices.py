"""The fence-device contract: what a plugin implements to add a kind of fence device.

``omha.toml`` lists devices under ``[[fencing.devices]]``; each names a ``kind`` that a plugin registered
through ``omha_fence_devices``. The core builds one :class:`FenceDevice` per configured device and calls
:meth:`FenceDevice.fence` with the node's targets (outlets, plugs, X10 addresses) from the device's ``nodes``
map. Devices are tried in configured order until one returns a :class:`FenceResult` with ``ok`` true.

Rules every kind gets from this base class, so that no plugin has to get them right on its own:

- **Several targets** (a node with two power supplies, ``nodes = { n3 = ["3", "4"] }``): ``reboot`` is a power
  cycle of the whole node, never one target after the other: ``off`` on every target (all must succeed, read
  back where the device can), ``reboot_pause`` seconds, then ``on`` on every target. A kind's own
  :meth:`FenceDevice.reboot` is only ever called with a single target.
- **Time**: :meth:`FenceDevice.max_duration` says how long one call may take. The core waits that long (plus
  a small margin); a call still running then counts as failed, and the core waits for it to end before it
  tries another device or retries, so two calls never switch the same node at once.

Credentials: options whose name ends in ``password``, ``community`` or ``secret`` are redacted everywhere the
core prints options; a device must never put them in a message either.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import voluptuous as vol

from omha_core.errors import FenceError

Action = Literal["off", "on", "reboot", "status"]
ACTIONS: tuple[str, ...] = ("off", "on", "reboot", "status")
#: what ``omha fence NODE --action ...`` accepts: the fence actions, and ``list`` (every target of a device)
OPERATOR_ACTIONS: tuple[str, ...] = (*ACTIONS, "list")
#: default ``timeout`` of a device (seconds for one off, on or status)
DEFAULT_TIMEOUT = 20.0


@dataclass(frozen=True)
class FenceResult:
    """The outcome of one device action.

    :param ok: the action was carried out (and verified, where ``verified``).
    :param verified: the final state was read back from the device; False for write-only devices (X10 CM17A).
    :param message: a human reason, without secrets.
    :param state: for ``status``: ``"on"``, ``"off"`` or ``None`` when unknown.
    :param unverified_reason: when ``ok`` but not ``verified``: why the state was not read back (no status
        query configured, an answer that was neither on nor off, ...), for the operator.
    """

    ok: bool
    verified: bool = False
    message: str = ""
    state: str | None = None
    unverified_reason: str = ""


@dataclass(frozen=True)
class Target:
    """One target a device knows (``omha fence NODE --action list``).

    :param id: what a ``nodes`` map names it by (outlet number, plug name).
    :param name: the device's own label for it ("" when it has none).
    :param state: ``"on"``, ``"off"``, or None when the device does not say.
    """

    id: str
    name: str = ""
    state: str | None = None


class UnsupportedAction(FenceError):
    """The device kind cannot do this action at all (as opposed to trying and failing)."""


class FenceDevice(ABC):
    """Base class of fence devices; subclass it and return the class from ``omha_fence_devices``.

    :meth:`off` and :meth:`on` are abstract (a power cycle needs both): a kind lacking one is refused when its
    plugin's ``omha_fence_devices`` is read, with the plugin's name and the missing method.

    :param name: the device's ``name`` in ``omha.toml``.
    :param options: the device's options, validated against :attr:`schema` (``name``, ``kind``, ``nodes``
        removed).
    """

    #: voluptuous schema (a dict of keys) for the kind's own options, merged into the device entry schema
    schema: ClassVar[dict[Any, Any]] = {}
    #: True when the device can read the outlet state back (``status``)
    can_verify: ClassVar[bool] = False
    #: programs the kind runs, each with the Debian package that ships it (``omha check --system``)
    system_commands: ClassVar[Mapping[str, str]] = {}

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        self.name = name
        self.options = options
        #: the node being fenced during a :meth:`fence` call ("" when called directly)
        self.current_node = ""
        #: told (device, node, result) when a power cycle has switched the node off, before its pause and
        #: power-on: the node is fenced from then on, so the caller may publish it without waiting for the on
        self.off_done: Callable[[FenceDevice, str, FenceResult], None] | None = None

    def required_commands(self) -> Mapping[str, str]:
        """Programs this device runs -> the Debian package that ships them (a kind whose programs depend on
        its options overrides this)."""
        return self.system_commands

    # -- what a kind implements -------------------------------------------------------------------------

    @abstractmethod
    def off(self, targets: list[str]) -> FenceResult:
        """Switch every target off. ``ok`` only when done (and read back, if :attr:`can_verify`)."""
        raise NotImplementedError

    @abstractmethod
    def on(self, targets: list[str]) -> FenceResult:
        """Switch every target on."""
        raise NotImplementedError

    def status(self, targets: list[str]) -> FenceResult:
        """Read the state: ``state="off"`` only when every target is off, ``"on"`` when any is on."""
        return FenceResult(ok=False, message=f"{self.name}: status is not supported by this kind of device")

    def reboot(self, targets: list[str]) -> FenceResult:
        """Reboot one target (the core power-cycles several targets itself, see :meth:`power_cycle`).

        The default is :meth:`power_cycle`; a kind with a native, verified reboot of one outlet may override.
        """
        return self.power_cycle(targets)

    def list_targets(self) -> list[Target]:
        """Every target the device has, with its label and state where known (``omha fence --action list``).

        Kinds that cannot enumerate their targets leave this alone. For kinds written before this method
        existed, a ``list_outlets()`` method returning objects with ``number``, ``name`` and ``state`` is used.

        :raises UnsupportedAction: the kind cannot list its targets.
        :raises FenceError: the device could not be read (the message names it, never a credential).
        """
        lister = getattr(self, "list_outlets", None)
        if not callable(lister):
            raise UnsupportedAction(f"{self.name}: listing targets is not supported by this kind of device")
        return [
            Target(str(getattr(o, "number", o)), str(getattr(o, "name", "") or ""), getattr(o, "state", None))
            for o in lister()
        ]

    def max_duration(self, action: str, targets: list[str]) -> float:
        """The longest one :meth:`fence` call for ``action`` on ``targets`` (or ``list``) may take, in seconds.

        The default trusts the device to finish one off, on or status of all its targets within its
        ``timeout`` option; a power cycle is an off, ``reboot_pause`` and an on. Override it when the kind
        works target by target, retries on its own, or has a native reboot that takes longer.
        """
        if action == "reboot":
            return self.max_duration("off", targets) + self.reboot_pause + self.max_duration("on", targets)
        return self.option_float("timeout", DEFAULT_TIMEOUT)

    # -- what the core calls ----------------------------------------------------------------------------

    def supports(self, action: str) -> bool:
        """Whether the kind can do ``action`` at all (``off``, ``on`` and ``reboot`` always).

        ``status`` and ``list`` count as supported when the kind implements them (it may still fail to).
        """
        if action in ("off", "on", "reboot"):
            return True
        if action == "status":
            return type(self).status is not FenceDevice.status
        if action == "list":
            return type(self).list_targets is not FenceDevice.list_targets or callable(
                getattr(self, "list_outlets", None)
            )
        return False

    def fence(self, action: str, targets: list[str], node: str = "") -> FenceResult:
        """Do ``action`` (off / on / reboot / status) on ``node``'s ``targets``.

        A ``reboot`` of several targets is always :meth:`power_cycle` (all off, pause, all on), whatever the
        kind's own :meth:`reboot` does: a node with two supplies must lose both at once.
        """
        self.current_node = node
        if action not in ACTIONS:
            return FenceResult(ok=False, message=f"{self.name}: unknown action {action!r}")
        if action == "reboot" and len(targets) > 1:
            return self.power_cycle(targets)
        method = getattr(self, action)
        result: FenceResult = method(targets)
        return result

    def power_cycle(self, targets: list[str]) -> FenceResult:
        """Off on every target (all must succeed, and be read back where the device can), pause, on on every
        target. The node is fenced once it was off: a failed power-on is reported but does not undo that."""
        off = self.off(targets)
        if not off.ok:
            return off
        tell = getattr(self, "off_done", None)  # a kind whose __init__ skipped ours has none
        if tell is not None:
            tell(self, getattr(self, "current_node", ""), off)
        time.sleep(self.reboot_pause)
        on = self.on(targets)
        why = off.unverified_reason
        if on.ok:
            message = f"{off.message}; then on again"
            return FenceResult(ok=True, verified=off.verified, state="on", message=message, unverified_reason=why)
        return FenceResult(
            ok=True,
            verified=off.verified,
            state="off",
            message=f"{off.message}; power on afterwards failed: {on.message}",
            unverified_reason=why,
        )

    # -- helpers for kinds ------------------------------------------------------------------------------

    @property
    def reboot_pause(self) -> float:
        """Seconds between off and on in a power cycle (the ``reboot_pause`` option)."""
        return self.option_float("reboot_pause", 1.0)

    def option_float(self, key: str, default: float) -> float:
        """A numeric option, ``default`` when absent."""
        value = self.options.get(key)
        return default if value is None else float(value)


def device_schema(kind_schema: Mapping[Any, Any]) -> vol.Schema:
    """The schema of one ``[[fencing.devices]]`` entry: the common keys plus the kind's own."""
    from omha_core import config_validation as cv

    base: dict[Any, Any] = {
        vol.Required("name"): cv.identifier,
        vol.Required("kind"): cv.identifier,
        vol.Required("nodes"): {cv.identifier: cv.string_or_list},
        vol.Optional("action"): vol.In(["off", "reboot"], msg="expected 'off' or 'reboot'"),
        # seconds for one off, on or status (see FenceDevice.max_duration for what the core waits)
        vol.Optional("timeout", default=DEFAULT_TIMEOUT): cv.positive_float,
        vol.Optional("reboot_pause", default=1.0): cv.non_negative_float,
    }
    base.update(kind_schema)
    return vol.Schema(base)


@dataclass(frozen=True)
class ProcessResult:
    """What :func:`run_process` saw: the exit status (None when it was killed at its deadline) and output."""

    returncode: int | None
    stdout: str
    stderr: str

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


#: The guard every fence command runs under (``python -I -S -c _GUARD FD ARGV...``, standard library only). It
#: leads the command's process group and session, runs the command in that group, and exits with its status;
#: when the read end FD of the caller's pipe sees end-of-file (the caller died: its write end closed with it)
#: or the guard gets SIGTERM / SIGHUP / SIGINT, it kills the whole group, the command's children included.
#: PR_SET_PDEATHSIG would not do: it fires when the *thread* that forked exits (fence calls run in worker
#: threads) and reaches the direct child only, never a script's children.
_GUARD = r"""# omha fence guard: runs a fence command, kills its process group when omha dies
import os, select, signal, sys
fd, argv = int(sys.argv[1]), sys.argv[2:]
def stop(*_):
    os.killpg(0, signal.SIGKILL)
for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(sig, stop)
pid = os.fork()
if pid == 0:
    os.close(fd)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"{argv[0]}: {exc.strerror}\n".encode())
    os._exit(127)
poller = select.poll()
poller.register(fd, select.POLLIN)
try:
    poller.register(os.pidfd_open(pid), select.POLLIN)
    wait = None
except (AttributeError, OSError):
    wait = 50
while True:
    events = poller.poll(wait)
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if any(f == fd for f, _ in events) and os.read(fd, 64) == b"":
        stop()
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
os._exit(code)
"""


def guarded(argv: list[str], lifeline: int) -> list[str]:
    """``argv`` run under the guard (see ``_GUARD``), which watches the pipe read end ``lifeline``; ``argv``
    itself when no Python interpreter can be found to run the guard."""
    import shutil
    import sys

    python = sys.executable or shutil.which("python3")
    if not python:
        return argv
    return [python, "-I", "-S", "-c", _GUARD, str(lifeline), *argv]


def run_process(
    argv: list[str], timeout: float, *, input: str | None = None, env: Mapping[str, str] | None = None
) -> ProcessResult:
    """Run a fence command or agent, bounded by ``timeout`` seconds, and never beyond its caller's life.

    It runs in a session of its own; at the deadline the whole process group is killed (not only the
    direct child, whose children would otherwise keep switching outlets after the core gave up on it). It is
    started under a small guard process that kills the same group when this process dies (a SIGKILLed
    daemon): a fence call left running would switch the node beside the next fencer's call.
    """
    import os
    import signal
    import subprocess

    lifeline, held = os.pipe()  # both ends close-on-exec: only the guard gets the read end (pass_fds)
    try:
        proc = subprocess.Popen(
            guarded(argv, lifeline),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            pass_fds=(lifeline,),
        )
    except BaseException:
        os.close(held)
        raise
    finally:
        os.close(lifeline)
    try:
        try:
            out, err = proc.communicate(input, timeout=timeout)
            return ProcessResult(proc.returncode, out, err)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                out, err = proc.communicate(timeout=5.0)
            except subprocess.TimeoutExpired:  # a descendant left the group and holds the pipes: stop reading
                proc.kill()
                out, err = "", ""
            proc.wait()
            return ProcessResult(None, out or "", err or "")
    finally:
        os.close(held)
