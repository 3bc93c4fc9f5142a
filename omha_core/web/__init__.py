"""The HTTP listener of ``[http] listen``: metrics, the live status page and its JSON API (see ``server``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omha_core.backends import Store
    from omha_core.config import Config
    from omha_core.metrics import Metrics
    from omha_core.web.server import WebServer


def start_web(config: Config, store: Store, metrics: Metrics, interval: float) -> WebServer:
    """Bind ``[http] listen`` and serve in background threads; raises OSError when the address is taken."""
    from omha_core.control import tell
    from omha_core.secrets import read_secret
    from omha_core.web.server import WebServer
    from omha_core.web.source import StatusSource

    http = config.section("http")
    host, port = http["listen"]
    source = StatusSource(store, config.cluster_name, float(config.timing.get("dead_after", 2.0)), interval)
    token = read_secret(http, "token")
    if token is not None and len(token) < 8:
        from omha_core.errors import ConfigError

        raise ConfigError("[http] token: expected a token of at least 8 characters")
    server = WebServer((host, port), source, metrics.render, token, lambda group, level: tell(store, group, level))
    server.start()
    return server
