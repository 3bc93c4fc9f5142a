"""The status page, the metrics and the JSON API of ``[http] listen``, on a real three-node cluster.

A real Chromium (driven by Playwright) keeps the page of a surviving node open while the node running ``web`` is
killed: the page must show the fence and the failover without being reloaded. Then the metrics of the nodes
that acted are scraped and parsed with prometheus_client's own parser, the API is compared with
``omha status --json``, and a last kill leaves one node of three, which must log the quorum loss as CRITICAL.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab
from prometheus_client.parser import text_string_to_metric_families

from omha_core.localcluster import fence_device

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    """GET ``url``: (status, body), or (0, b"") when nothing answers (yet). The connection is always closed here:
    urllib leaves it to the garbage collector when a response fails half-way, and pytest turns the
    ResourceWarning that follows into a failure of whichever test happens to be running then."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):  # not listening (yet), or the connection dropped
        return 0, b""
    finally:
        conn.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels (parsed by prometheus_client)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, dict[str, str]]]:
    require_commands("flock")
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs chromium (tests/system-packages.txt)")
    c = Cluster(
        tmp_path,
        3,
        cltab=web_cltab(tmp_path),
        hactl="web run\n",
        devices=[fence_device(tmp_path, ["n1", "n2", "n3"])],
        config={"fencing": {"action": "off"}},
    )
    urls = {}
    for node in c.names:
        port = free_port()
        c.sections["http"] = {"listen": f"127.0.0.1:{port}"}
        c.write_config(node)
        urls[node] = f"http://127.0.0.1:{port}"
    yield c, urls
    c.close()


def test_page_follows_a_failover_live_and_metrics_count_it(
    cluster: tuple[Cluster, dict[str, str]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    c, urls = cluster
    c.start()
    victim = c.wait_running("web")
    watcher = next(n for n in c.names if n != victim)
    c.wait_for("the watcher's listener", lambda: get(urls[watcher] + "/api/v1/status")[0] == 200)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(urls[watcher] + "/")
            page.wait_for_selector(f'.group[data-group="web"][data-running="{victim}"]', timeout=20000)
            page.wait_for_selector(f'.node[data-node="{victim}"][data-state="up"]')
            page.evaluate("window.__notReloaded = true")
            assert page.locator(".fence").count() == 0  # nobody fenced yet
            assert page.locator("form.tell").count() == 0  # read-only: no token configured

            c.kill(victim)
            new = c.wait_running("web", 40, exclude=(victim,))

            page.wait_for_selector(f'.node[data-node="{victim}"][data-state="fenced"]', timeout=20000)
            page.wait_for_selector(f'.fence[data-node="{victim}"][data-ok="true"]', timeout=20000)
            page.wait_for_selector(f'.group[data-group="web"][data-running="{new}"]', timeout=20000)
            # the timeline draws the fence and the failover as shapes in its SVG
            page.wait_for_selector(f'#timeline-svg g.fence[data-node="{victim}"][data-ok="true"]', timeout=20000)
            page.wait_for_selector(
                f'#timeline-svg g.failover[data-group="web"][data-from="{victim}"][data-to="{new}"]', timeout=20000
            )
            assert page.evaluate("window.__notReloaded") is True
            page.screenshot(path=str(tmp_path / "status-page.png"), full_page=True)
            if os.environ.get("OMHA_SCREENSHOT"):  # refresh docs/status-page.png: OMHA_SCREENSHOT=docs/...
                shutil.copy(tmp_path / "status-page.png", os.environ["OMHA_SCREENSHOT"])
        finally:
            browser.close()

    fencer = c.fence_record(victim)["by"]
    taker = samples(get(urls[new] + "/metrics")[1].decode())
    assert taker[("omha_failovers_total", (("group", "web"),))] == 1
    assert taker[("omha_failover_seconds_count", ())] == 1
    assert taker[("omha_decision_cycle_seconds_count", ())] > 0
    assert taker[("omha_node_up", (("node", victim),))] == 0
    assert taker[("omha_node_up", (("node", new),))] == 1
    assert taker[("omha_node_fenced", (("node", victim),))] == 1
    assert taker[("omha_group_running", (("group", "web"), ("node", new)))] == 1
    assert taker[("omha_group_wanted", (("group", "web"), ("level", "run")))] == 1
    fenced = samples(get(urls[fencer] + "/metrics")[1].decode())
    assert fenced[("omha_fence_attempts_total", (("node", victim), ("result", "ok")))] == 1

    # the API is what `omha status --json` prints
    code, body = get(urls[new] + "/api/v1/status")
    api = json.loads(body)
    cli = json.loads(c.omha(new, "status", "--json").stdout)
    assert code == 200 and api.keys() == cli.keys()
    assert api["groups"]["web"]["running_on"] == cli["groups"]["web"]["running_on"] == [new]
    assert {n: v["state"] for n, v in api["nodes"].items()} == {n: v["state"] for n, v in cli["nodes"].items()}

    # read-only by default: an action is refused without a configured token
    req = urllib.request.Request(
        urls[new] + "/api/v1/tell", data=b'{"group": "web", "level": "stop"}', method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    assert refused.value.code == 403
    refused.value.close()
    assert c.running("web") == [new]

    # one node of three left: quorum is lost, at CRITICAL
    other = next(n for n in c.names if n not in (victim, new))
    c.kill(other)
    c.wait_for("the quorum loss logged", lambda: "CRITICAL quorum LOST" in c.log(new), 30)


def test_a_taken_port_turns_the_listener_off_not_the_node(tmp_path: Path) -> None:
    """Monitoring must not keep groups down: a node whose [http] port is taken logs why and runs as usual."""
    require_commands("flock")
    port = free_port()
    http = {"http": {"listen": f"127.0.0.1:{port}"}, "quorum": {"policy": "ignore"}}
    c = Cluster(tmp_path, 2, cltab=web_cltab(tmp_path), hactl="web run\n", config=http)
    try:
        c.start("n1")
        c.wait_for("n1's listener", lambda: get(f"http://127.0.0.1:{port}/api/v1/status")[0] == 200)
        c.start("n2")
        c.wait_for("n2's complaint", lambda: f"[http] listen 127.0.0.1:{port}" in c.log("n2"))
        assert "metrics and the status page are off" in c.log("n2")
        c.wait_running("web")
        c.kill("n1", signal.SIGTERM)  # n1 stops cleanly: n2 takes web over, listener or not
        assert c.wait_running("web", 40) == "n2"
    finally:
        c.close()
