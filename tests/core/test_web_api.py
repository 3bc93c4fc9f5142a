"""The HTTP listener on its own, over a real shared-directory store: the API, its token, the page, ``[http]``."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.metrics import Metrics
from omha_core.web import start_web
from omha_core.web.server import WebServer

TOKEN = "page-token-0123456789"


def serve(tmp_path: Path, token: str | None) -> WebServer:
    shared = tmp_path / "shared"
    shared.mkdir(exist_ok=True)
    http: dict[str, Any] = {"listen": "127.0.0.1:0"}
    if token:  # as a file, as secrets are best given
        (tmp_path / "token").write_text(token + "\n")
        http["token_file"] = str(tmp_path / "token")
    config = validate_config({"sharedfs": {"path": str(shared)}, "http": http})
    store = SharedDirStore(config)
    store.open()
    return start_web(config, store, Metrics(lambda: None), 0.2)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Any]:
    made: list[WebServer] = []

    def make(token: str | None) -> str:
        server = serve(tmp_path, token)
        made.append(server)
        first_refresh(server)
        host, port = server.address[:2]
        return f"http://{host!s}:{port}"

    yield make
    for s in made:
        s.close()


def first_refresh(server: WebServer) -> None:
    """Wait for the poller's first read of the store (it runs in the listener's thread, not the caller's)."""
    deadline = time.monotonic() + 20
    while server.source.current_report() is None:
        assert time.monotonic() < deadline, server.source.error
        time.sleep(0.05)


def call(url: str, body: bytes | None = None, token: str | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:  # it holds the response open: close it, not the garbage collector
            return exc.code, json.loads(exc.read())


TELL = json.dumps({"group": "web", "level": "run"}).encode()


def test_actions_are_refused_without_a_configured_token(web: Any, tmp_path: Path) -> None:
    base = web(None)
    code, reply = call(base + "/api/v1/tell", TELL, token="anything")
    assert code == 403 and "no [http] token" in reply["error"]
    assert not (tmp_path / "shared" / "hactl").exists()
    assert call(base + "/api/v1/page")[1]["actions"] is False


def test_tell_needs_the_token_and_then_sets_hactl(web: Any, tmp_path: Path) -> None:
    base = web(TOKEN)
    assert call(base + "/api/v1/tell", TELL)[0] == 401
    assert call(base + "/api/v1/tell", TELL, token=TOKEN + "x")[0] == 401
    code, reply = call(base + "/api/v1/tell", TELL, token=TOKEN)
    assert code == 200 and reply["ok"], reply
    assert (tmp_path / "shared" / "hactl").read_text().split() == ["web", "run"]
    code, reply = call(base + "/api/v1/tell", json.dumps({"group": "a:b", "level": "run"}).encode(), TOKEN)
    assert code == 400 and "a:b" in reply["error"]
    assert call(base + "/api/v1/tell", b"not json", TOKEN)[0] == 400
    page = call(base + "/api/v1/page")[1]
    assert page["actions"] is True and TOKEN not in json.dumps(page)


def test_page_and_unknown_paths(web: Any) -> None:
    base = web(None)
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/html") and b"timeline-svg" in r.read()
    assert call(base + "/nope")[0] == 404
    code, status = call(base + "/api/v1/status")
    assert code == 200 and status["groups"] == {} and status["observer"] is None


def test_http_section_is_validated() -> None:
    assert validate_config({"http": {"listen": "[::1]:9677"}}).section("http")["listen"] == ("::1", 9677)
    for bad in ("9677", "localhost:99999", ":80"):
        with pytest.raises(ConfigError, match="listen"):
            validate_config({"http": {"listen": bad}})
    with pytest.raises(ConfigError, match="token"):
        validate_config({"http": {"listen": "127.0.0.1:9677", "token": "short"}})
    assert validate_config({}).section("http") == {}


def test_idle_clients_do_not_hold_up_others(web: Any, monkeypatch: Any) -> None:
    """Each connection has its own thread, and a silent one is dropped: a stalled client never blocks."""
    import socket

    from omha_core.web import server as web_server

    monkeypatch.setattr(web_server, "IDLE_TIMEOUT", 0.5)
    base = web(None)
    host, port = base.removeprefix("http://").rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
    try:
        idle[0].sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
        assert call(base + "/api/v1/status")[0] == 200
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the listener once silent past the timeout
    finally:
        for sock in idle:
            sock.close()
