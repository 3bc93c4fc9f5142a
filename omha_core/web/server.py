"""The HTTP listener of ``[http] listen``: ``/metrics``, the status page, and a small JSON API.

- ``GET /`` the live status page (``page.html``: it polls ``/api/v1/page`` once a second);
- ``GET /metrics`` Prometheus exposition (:mod:`omha_core.metrics`);
- ``GET /api/v1/status`` what ``omha status --json`` prints;
- ``GET /api/v1/page`` the page's data: the status, fence records, placement, timeline;
- ``POST /api/v1/tell`` ``{"group": G, "level": L}``: needs ``Authorization: Bearer <[http] token>``; refused
  (403) when no token is configured, so the listener is read-only by default.

It runs in threads of its own: a slow client or a scrape never delays the daemon's cycle.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from omha_core.errors import OmhaError
from omha_core.web.source import StatusSource

log = logging.getLogger("omha.http")

#: the largest request body accepted (a tell is a few dozen bytes)
MAX_BODY = 4096
#: seconds a connection may stay silent before it is closed
IDLE_TIMEOUT = 10.0


class WebServer:
    """A threading HTTP server bound to ``(host, port)``, serving ``source`` and ``render_metrics``."""

    def __init__(
        self,
        address: tuple[str, int],
        source: StatusSource,
        render_metrics: Callable[[], bytes],
        token: str | None,
        tell: Callable[[str, str], str],
    ) -> None:
        self.source = source
        self.render_metrics = render_metrics
        self.token = token
        self.tell = tell
        self.page = resources.files("omha_core.web").joinpath("page.html").read_bytes()
        handler = _handler_for(self)
        self.httpd = _Server(address, handler) if ":" not in address[0] else _Server6(address, handler)
        self.address = self.httpd.server_address
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="omha-http", daemon=True)

    def start(self) -> None:
        self.source.start()
        self.thread.start()

    def close(self) -> None:
        self.source.close()
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorized(self, header: str | None) -> tuple[int, str] | None:
        """None when the request may act; else the HTTP status and the reason."""
        if not self.token:
            return 403, "actions are disabled: no [http] token is configured (the page is read-only)"
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return 401, "a valid token is needed (Authorization: Bearer <token>)"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def _handler_for(server: WebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "omha"
        protocol_version = "HTTP/1.1"
        #: an idle or stalled client's connection (and its thread) is dropped after this many seconds
        timeout = IDLE_TIMEOUT

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, code: int, value: Any) -> None:
            self._send(code, json.dumps(value, sort_keys=True, default=str).encode(), "application/json")

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, server.page, "text/html; charset=utf-8")
            elif path == "/metrics":
                self._send(200, server.render_metrics(), CONTENT_TYPE_LATEST)
            elif path == "/api/v1/status":
                report = server.source.current_report()
                if report is None:
                    self._json(503, {"error": server.source.error or "no report yet"})
                else:
                    self._json(200, report)
            elif path == "/api/v1/page":
                self._json(200, {**server.source.snapshot(), "actions": bool(server.token)})
            else:
                self._json(404, {"error": f"no such page: {path}"})

        do_HEAD = do_GET

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            if path != "/api/v1/tell":
                self._json(404, {"error": f"no such action: {path}"})
                return
            refused = server.authorized(self.headers.get("Authorization"))
            if refused is not None:
                self._json(refused[0], {"error": refused[1]})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY:
                    raise ValueError(f"expected a JSON body of at most {MAX_BODY} bytes")
                body = json.loads(self.rfile.read(length))
                group, level = body["group"], body["level"]
                if not isinstance(group, str) or not isinstance(level, str):
                    raise ValueError("expected {\"group\": \"...\", \"level\": \"...\"}")
            except (ValueError, KeyError, TypeError) as exc:
                self._json(400, {"error": f"bad request: {exc}"})
                return
            try:
                version = server.tell(group, level)
            except OmhaError as exc:
                self._json(400, {"error": str(exc)})
                return
            log.info("http: tell %s %s (hactl version %s)", group, level, version)
            server.source.refresh()
            self._json(200, {"ok": True, "group": group, "level": level, "version": version})

    return Handler
