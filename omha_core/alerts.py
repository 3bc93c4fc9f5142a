"""Alert agents, Pacemaker-compatible: an external program run on every cluster event, with ``CRM_alert_*``.

``omha.toml``::

    [[alerts]]
    path = "/usr/local/lib/omha/alert_file.sh"      # e.g. Pacemaker's /usr/share/pacemaker/alerts/*.sample
    recipient = "/var/log/omha-alerts.log"          # optional; a list runs the agent once per recipient
    timeout = 30                                     # seconds; the agent's process group is killed at it
    select = ["node", "fencing", "resource"]         # optional; the kinds of event it receives

Events, with the environment Pacemaker's alert agents read (``CRM_alert_kind`` / ``_node`` / ``_desc`` /
``_task`` / ``_rc`` / ``_rsc`` / ``_interval`` / ``_target_rc`` / ``_status`` / ``_timestamp`` /
``_recipient`` / ``_version`` / ``_node_sequence``, each also as ``CRM_notify_*`` like Pacemaker):

- ``node``: a node joined (``desc`` ``member``) or was lost (``lost``), as this node saw it;
- ``fencing``: this node fenced a node (``task`` off/reboot, ``rc`` 0) or every device failed (``rc`` 1);
- ``resource``: a group reached its level here (``task`` ``start``), left it (``stop``) or FAILED here
  (``rc`` 1, ``desc`` ``error``); ``rsc`` is the group.

Alerts never get in the way of the cluster: events go through a bounded queue to one background thread (a
full queue drops the event, with a warning), each agent run is killed at its timeout, their failures are only
logged, and the environment is built from scratch, so no secret of the daemon's environment reaches them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omha_core._version import __version__

# the [[alerts]] schema lives with the configuration's, so that loading omha.toml does not import this module
from omha_core.config import ALERT_SCHEMA as ALERT_SCHEMA
from omha_core.config import KINDS as KINDS
from omha_core.config import TIMESTAMP_FORMAT as TIMESTAMP_FORMAT
from omha_core.hactl import STOP_LEVEL

if TYPE_CHECKING:  # only when a daemon runs alerts
    import queue
    import subprocess
    import threading

log = logging.getLogger("omha.alerts")

#: events waiting for the alert thread; more are dropped (with a warning) rather than slow the daemon down
QUEUE_SIZE = 256
#: Pacemaker's execution status codes (``CRM_alert_status``)
EXEC_DONE, EXEC_ERROR = 0, 4
_SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: group states of the local init in which a group has reached its level
_UP_STATES = ("DONE", "PASSED")


def format_timestamp(fmt: str, when: float) -> str:
    """``when`` (epoch seconds) in Pacemaker's timestamp format: strftime, plus ``%N`` for the fraction of the
    second (``%06N``: 6 digits, ``%N``: 9)."""

    def fraction(m: re.Match[str]) -> str:
        digits = f"{int((when % 1) * 1e9):09d}"
        width = int(m[1]) if m[1] else 9
        return digits[: max(1, min(width, 9))]

    return time.strftime(re.sub(r"%0?(\d*)N", fraction, fmt), time.localtime(when))


@dataclass(frozen=True)
class Event:
    """One thing that happened: its kind, when, and the ``CRM_alert_<name>`` values that describe it."""

    kind: str
    when: float
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One ``[[alerts]]`` entry."""

    path: str
    recipients: tuple[str, ...]
    timeout: float
    select: frozenset[str]
    timestamp_format: str

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Alert:
        recipient = entry.get("recipient") or []
        return cls(
            str(entry["path"]),
            tuple(recipient),
            float(entry.get("timeout", 30.0)),
            frozenset(entry.get("select", KINDS)),
            str(entry.get("timestamp_format", TIMESTAMP_FORMAT)),
        )


class Alerts:
    """The alert agents of one node: :meth:`emit` queues an event, a background thread runs the agents."""

    def __init__(self, alerts: Iterable[Alert], node: str) -> None:
        import queue

        self.alerts = list(alerts)
        self.node = node
        self.sequence = 0
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        #: what :meth:`observe` saw last: live nodes, and the groups at their level here (None before the first)
        self._alive: set[str] | None = None
        self._up: set[str] = set()
        self._failed: set[str] = set()

    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], node: str) -> Alerts:
        return cls([Alert.from_config(e) for e in entries], node)

    # -- events in ------------------------------------------------------------------------------------

    def emit(self, kind: str, **fields: object) -> None:
        """Queue an event for the agents that select ``kind``; never blocks, never raises."""
        if not any(kind in a.select for a in self.alerts):
            return
        import queue
        import threading

        event = Event(kind, time.time(), {k: "" if v is None else str(v) for k, v in fields.items()})
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="omha-alerts", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("alert queue full (%d events): dropped a %s alert", QUEUE_SIZE, kind)

    def observe(self, alive: Iterable[str], groups: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, str]) -> None:
        """Compare one cycle's view with the last one and emit what changed: nodes joining or lost, groups
        reaching their level here, leaving it, or FAILED here. Never raises."""
        try:
            self._observe(set(alive), groups, wanted)
        except Exception:
            log.exception("alerts: cannot compare this cycle's view")

    def _observe(self, alive: set[str], groups: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, str]) -> None:
        if self._alive is not None:
            for name in sorted(alive - self._alive):
                self.emit("node", node=name, nodeid=name, desc="member")
            for name in sorted(self._alive - alive):
                self.emit("node", node=name, nodeid=name, desc="lost")
        self._alive = alive
        up = {
            g
            for g, st in groups.items()
            if st.get("level") == wanted.get(g) != STOP_LEVEL and st.get("state") in _UP_STATES
        }
        failed = {g for g, st in groups.items() if st.get("state") == "FAILED"}
        for group in sorted(up - self._up):
            self._resource(group, "start", 0)
        for group in sorted(failed - self._failed):
            self._resource(group, "monitor" if group in self._up else "start", 1)
        for group in sorted(self._up - up - failed):
            self._resource(group, "stop", 0)
        self._up, self._failed = up, failed

    def final(self, groups: Mapping[str, Mapping[str, Any]], wanted: Mapping[str, str], timeout: float = 5.0) -> None:
        """The daemon is leaving: emit the groups' last changes (stopped), then :meth:`close`. Never raises."""
        self.observe(self._alive or (), groups, wanted)
        self.close(timeout)

    def _resource(self, group: str, task: str, rc: int) -> None:
        self.emit(
            "resource",
            node=self.node,
            rsc=group,
            task=task,
            interval=0,
            rc=rc,
            target_rc=0,
            status=EXEC_DONE if rc == 0 else EXEC_ERROR,
            desc="ok" if rc == 0 else "error",
        )

    def fenced(self, target: str, action: str, device: str) -> None:
        """This node fenced ``target``."""
        desc = f"Operation {action} of {target} by {self.node} for omha@{self.node}: OK (device {device})"
        self.emit("fencing", node=target, task=action, rc=0, desc=desc)

    def fence_failed(self, target: str, errors: list[str]) -> None:
        """Every device failed to fence ``target``."""
        desc = f"Operation off of {target} by {self.node} for omha@{self.node}: Error ({'; '.join(errors)})"
        self.emit("fencing", node=target, task="off", rc=1, desc=desc)

    # -- agents run ---------------------------------------------------------------------------------

    def environment(self, event: Event, alert: Alert, recipient: str) -> dict[str, str]:
        """The agent's whole environment: a PATH and the ``CRM_alert_*`` values (with ``CRM_notify_*`` twins)."""
        self.sequence += 1
        values = {
            "kind": event.kind,
            "version": __version__,
            "recipient": recipient,
            "node_sequence": str(self.sequence),
            "timestamp": format_timestamp(alert.timestamp_format, event.when),
            "timestamp_epoch": str(int(event.when)),
            "timestamp_usec": f"{int((event.when % 1) * 1e6):06d}",
            **event.fields,
        }
        env = {"PATH": _SAFE_PATH, "LC_ALL": "C", "HOME": "/"}
        for name, value in values.items():
            env[f"CRM_alert_{name}"] = value
            env[f"CRM_notify_{name}"] = value
        return env

    def run(self, event: Event) -> None:
        """Run every agent that selects the event, once per recipient, all at once; wait for each until its
        timeout, then kill its process group."""
        import subprocess

        running: list[tuple[subprocess.Popen[bytes], float, str]] = []
        for alert in self.alerts:
            if event.kind not in alert.select:
                continue
            for recipient in alert.recipients or ("",):
                try:
                    proc = subprocess.Popen(
                        [alert.path],
                        env=self.environment(event, alert, recipient),
                        cwd="/",
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                except OSError as exc:
                    log.error("alert agent %s cannot run: %s", alert.path, exc.strerror or exc)
                    continue
                running.append((proc, time.monotonic() + alert.timeout, alert.path))
        for proc, deadline, path in running:
            try:
                rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log.warning("alert agent %s (%s alert) timed out; killed", path, event.kind)
                continue
            if rc != 0:
                log.warning("alert agent %s (%s alert) exited %d", path, event.kind, rc)

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self.run(event)
            except Exception:
                log.exception("alert agents failed on a %s event", event.kind)

    def close(self, timeout: float = 5.0) -> None:
        """Let the queued alerts run for up to ``timeout`` seconds, then leave (the thread is a daemon)."""
        import queue

        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)


def fencing_hooks(alerts: Alerts) -> object:
    """A plugin object turning the fencing notifications (``omha_node_fenced``, ``omha_fence_failed``) into
    alerts. Built on demand: importing this module (the config schema does) must not load pluggy."""
    from omha_core.hookspecs import hookimpl

    class AlertHooks:
        @hookimpl
        def omha_node_fenced(self, node: str, device: str, action: str) -> None:
            alerts.fenced(node, action, device)

        @hookimpl
        def omha_fence_failed(self, node: str, errors: list[str]) -> None:
            alerts.fence_failed(node, errors)

    return AlertHooks()


def start_alerts(config: Any, pm: Any, node: str) -> Alerts:
    """The node's alerts from ``[[alerts]]`` in ``config``; its fencing hooks are registered with ``pm``."""
    alerts = Alerts.from_config(config.data.get("alerts") or [], node)
    if alerts.alerts:
        pm.register(fencing_hooks(alerts), name="omha-alerts")
    return alerts
