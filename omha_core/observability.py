"""What the daemon tells the outside world after each pass of its loop: systemd (READY, WATCHDOG, STATUS),
Prometheus metrics and the status page (``[http] listen``), and a CRITICAL log line when quorum is lost.

The daemon creates one :class:`Observability` once its init runs and calls :meth:`Observability.cycle_done`
after every pass; nothing here runs store calls on the event loop (the HTTP side has threads of its own).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from omha_core.systemd import Notifier, summary

if TYPE_CHECKING:
    from omha_core.metrics import Metrics
    from omha_core.web.server import WebServer

log = logging.getLogger("omha.daemon")


class Observability:
    """systemd notifications, metrics, the HTTP listener and the quorum alarm of one daemon."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.notifier = Notifier()
        self.metrics: Metrics | None = None
        self.web: WebServer | None = None
        self.had_quorum: bool | None = None
        if daemon.config.section("http").get("listen"):
            try:
                self._start_http()
            except Exception:  # a broken metrics setup must not take the node down with it
                log.exception("[http]: metrics and the status page are off")

    def _start_http(self) -> None:
        from omha_core.metrics import Metrics
        from omha_core.web import start_web

        config = self.daemon.config
        reports: list[WebServer] = []
        metrics = Metrics(lambda: reports[0].source.current_report() if reports else None)
        self.daemon.pm.register(metrics, name="omha-metrics")
        self.metrics = metrics
        try:
            self.web = start_web(config, self.daemon.store, metrics, max(float(self.daemon.timing.heartbeat), 0.5))
        except Exception as exc:  # monitoring must not keep the groups down: say so loudly and carry on
            host, port = config.section("http")["listen"]
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            log.error("[http] listen %s:%s: %s; metrics and the status page are off", host, port, why)
            return
        reports.append(self.web)
        host, port = str(self.web.address[0]), self.web.address[1]
        log.info("metrics and status page on http://%s:%s/", f"[{host}]" if ":" in host else host, port)

    def cycle_done(self, begun: float, completed: bool) -> None:
        """After a pass of the loop that began at ``begun`` (monotonic); ``completed``: it got through.
        Never raises: reporting must not stop the loop."""
        try:
            self._cycle_done(begun, completed)
        except Exception:
            log.exception("reporting the cycle failed")

    def _cycle_done(self, begun: float, completed: bool) -> None:
        daemon = self.daemon
        if completed and self.metrics is not None:
            self.metrics.cycle_seconds.observe(time.monotonic() - begun)
        quorum = (daemon.last_view.get("quorum") or {}).get("have")
        if quorum is not None and quorum != self.had_quorum:
            q = daemon.last_view.get("quorum") or {}
            detail = str(q.get("detail") or "") + ("; this node is not a member" if q.get("member") is False else "")
            if self.had_quorum and not quorum:
                log.critical("quorum LOST (%s): stopping every local group; starting and fencing nothing", detail)
            elif self.had_quorum is not None and quorum:
                log.warning("quorum regained (%s)", detail)
            self.had_quorum = bool(quorum)
        if self.notifier.enabled:
            local = daemon.init.status() if daemon.init is not None else {}
            self.notifier.cycle_done(completed, summary(daemon.last_view, local, daemon.hactl))

    def stopping(self) -> None:
        self.notifier.stopping()

    def close(self) -> None:
        if self.web is not None:
            self.web.close()
