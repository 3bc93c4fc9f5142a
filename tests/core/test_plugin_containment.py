"""Every plugin call is contained: a registration hook that raises skips (and names) its plugin, a notification
that raises does not silence the others, a fitness hook that raises is a veto naming the plugin."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from omha_core.config import validate_config
from omha_core.errors import ConfigError
from omha_core.fitness import Fitness
from omha_core.hooks import notify
from omha_core.plugins import get_plugin_manager, lookup, registry
from tests.core.test_plugins import make_dist, site  # noqa: F401 - the fixture

BROKEN_REGISTRATIONS = """
from omha_core import hookimpl

@hookimpl
def omha_config_schema():
    raise RuntimeError("schema bug")

@hookimpl
def omha_resource_agents():
    raise RuntimeError("agents bug")

@hookimpl
def omha_fence_devices():
    raise KeyError("devices bug")
"""


def test_a_raising_registration_hook_skips_its_plugin_and_names_it(site: Path) -> None:  # noqa: F811
    make_dist(site, "omha-wreck", "wreck", "omhatest_wreck", BROKEN_REGISTRATIONS)
    pm = get_plugin_manager()
    # everybody else's registrations still work
    assert "file" in registry(pm, "omha_resource_agents")
    assert "command" in registry(pm, "omha_fence_devices")
    assert "agents bug" in (pm.infos["wreck"].error or "") and "wreck" in pm.infos
    # only asking for something nobody provides is fatal, and the message says which plugin failed
    with pytest.raises(ConfigError, match=r"unknown resource agent 'nope'.*wreck .*agents bug"):
        lookup(pm, "omha_resource_agents", "nope", "resource agent")
    config = validate_config({"sharedfs": {"path": str(site)}}, "omha.toml", pm)  # names nothing of it: loads
    assert config.section("cluster")["store"] == "sharedfs"
    expected = r"wrecksection: unknown key.*\n.*wreck \(.*omha_config_schema failed: RuntimeError: schema bug"
    with pytest.raises(ConfigError, match=expected):
        validate_config({"sharedfs": {"path": str(site)}, "wrecksection": {"a": 1}}, "omha.toml", pm)


NOTIFIERS = """
from omha_core import hookimpl
CALLS = []

@hookimpl
def omha_node_lost(node, observer, groups):
    CALLS.append(("{name}", node))
    {body}
"""


def test_every_notification_implementation_is_called_when_one_raises(
    site: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_dist(site, "omha-a", "a", "omhatest_a", NOTIFIERS.format(name="a", body="pass"))
    make_dist(site, "omha-b", "b", "omhatest_b", NOTIFIERS.format(name="b", body="raise RuntimeError('b broke')"))
    make_dist(site, "omha-c", "c", "omhatest_c", NOTIFIERS.format(name="c", body="raise OSError('c broke')"))
    pm = get_plugin_manager()
    with caplog.at_level(logging.ERROR, logger="omha"):
        notify(pm, "omha_node_lost", node="n2", observer="n1", groups=["web"])
    calls = [call for m in ("omhatest_a", "omhatest_b", "omhatest_c") for call in __import__(m).CALLS]
    assert sorted(calls) == [("a", "n2"), ("b", "n2"), ("c", "n2")]
    assert "plugin b: omha_node_lost failed: RuntimeError: b broke" in caplog.text
    assert "plugin c: omha_node_lost failed: OSError: c broke" in caplog.text


def test_a_raising_fitness_hook_is_a_veto_naming_the_plugin(
    site: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_dist(
        site,
        "omha-fit",
        "fit",
        "omhatest_fit",
        """
        from omha_core import hookimpl
        @hookimpl
        def omha_node_fitness(group, node):
            if group == "db":
                raise ValueError("no licence file")
            return "maintenance" if group == "mail" else None
        """,
    )
    fitness = Fitness(get_plugin_manager(), "n1", None)
    with caplog.at_level(logging.ERROR, logger="omha"):
        unfit = fitness.check(["db", "web", "mail"])
        fitness.check(["db", "web", "mail"])
    assert unfit == {"db": "plugin fit failed: ValueError: no licence file", "mail": "maintenance (fit)"}
    assert fitness.errors == {"fit": "plugin fit failed: ValueError: no licence file"}
    assert caplog.text.count("plugin fit failed") == 1  # logged once per change, not every heartbeat


def test_omha_plugins_reports_a_raising_registration_hook(
    site: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from omha_core.cli import main

    make_dist(site, "omha-wreck", "wreck", "omhatest_wreck2", BROKEN_REGISTRATIONS)
    assert main(["plugins"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("wreck "))
    assert "FAILED: " in line and "omha_resource_agents failed: RuntimeError: agents bug" in line
