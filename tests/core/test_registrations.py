"""Reading the registration hooks without pluggy (issue 19, CLI start-up): ``plugins.get_registrations``.

``omha status`` and ``omha plugins`` only read the registration hooks. :func:`get_registrations` reads them without
pluggy when pluggy could not refuse any plugin, and hands over to the pluggy manager otherwise. These tests pin
that both ways give what the pluggy manager gives (the plugins, their hooks, their errors and their
registrations), that a plugin pluggy would refuse is still refused with pluggy's own message, and that the
core's markers set exactly what pluggy's set.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pluggy
import pytest

from omha_core import hookimpl, hookspecs
from omha_core.errors import Problem
from omha_core.lazy import Lazy
from omha_core.plugins import (
    REGISTRATION_HOOKS,
    Registrations,
    get_plugin_manager,
    get_registrations,
    probe_registrations,
    registry,
)
from tests.core.test_plugins import make_dist


def install(site: Path, module: str, source: str) -> None:
    """A plugin installed the way pip would, under the entry-point name ``module``."""
    make_dist(site, module, module, module, source)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("OMHA_BLOCK_PLUGINS", raising=False)
    monkeypatch.delenv("OMHA_AUTOLOAD_PLUGINS", raising=False)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("omhatest_")]:
        del sys.modules[name]


def resolved(pm: Any) -> dict[str, dict[str, tuple[Any, str]]]:
    """Every registration hook's merged registry (Lazy values imported), after probing as ``omha plugins`` does."""
    probe_registrations(pm)
    return {hook: registry(pm, hook) for hook in REGISTRATION_HOOKS}


def infos(pm: Any) -> dict[str, dict[str, Any]]:
    return {name: info.as_dict() for name, info in pm.infos.items()}


def test_installed_plugins_are_read_without_pluggy_and_agree_with_the_manager() -> None:
    light, manager = get_registrations(), get_plugin_manager()
    assert isinstance(light, Registrations)  # every shipped plugin registers plain hooks: no pluggy needed
    assert resolved(light) == resolved(manager)
    assert infos(light) == infos(manager)
    assert list(light.infos) == list(manager.infos)  # same order
    assert light.infos["builtin.sharedfs"].hooks == ["omha_membership_backends", "omha_store_backends"]


PLAIN = """
from omha_core import hookimpl
from omha_core.lazy import Lazy

@hookimpl
def omha_resource_agents():
    return {"plainagent": Lazy("omha_core.builtin.file_agent:FileAgent")}
"""

#: plugins that only pluggy may judge: get_registrations hands over to the pluggy manager for each
NOT_PLAIN = {
    "another hook": """
        from omha_core import hookimpl
        @hookimpl
        def omha_node_fitness(group, node):
            return None
        """,
    "a registration hook taking an argument": """
        from omha_core import hookimpl
        @hookimpl
        def omha_fence_devices(config):
            return {}
        """,
    "options": """
        from omha_core import hookimpl
        @hookimpl(tryfirst=True)
        def omha_fence_devices():
            return {}
        """,
    "an unknown hook": """
        from omha_core import hookimpl
        @hookimpl
        def omha_no_such_hook():
            return {}
        """,
    "a decorated function": """
        import functools
        from omha_core import hookimpl
        def traced(f):
            @functools.wraps(f)
            def inner(*args):
                return f(*args)
            return inner
        @hookimpl
        @traced
        def omha_fence_devices():
            return {}
        """,
    "a hook only __getattr__ knows": """
        from omha_core import hookimpl
        def _make():
            @hookimpl
            def omha_fence_devices():
                return {}
            return omha_fence_devices
        _HIDDEN = {"omha_fence_devices": _make()}
        def __getattr__(name):
            if name in _HIDDEN:
                return _HIDDEN[name]
            raise AttributeError(name)
        def __dir__():
            return sorted([*globals(), *_HIDDEN])
        """,
    "an object": """
        from omha_core import hookimpl
        class Plugin:
            @hookimpl
            def omha_fence_devices(self):
                return {}
        plugin = Plugin()
        """,
}


def test_a_plain_site_plugin_is_read_without_pluggy(site: Path) -> None:
    install(site, "omhatest_plain", PLAIN)
    light, manager = get_registrations(), get_plugin_manager()
    assert isinstance(light, Registrations)
    assert resolved(light) == resolved(manager)
    assert infos(light) == infos(manager)
    assert light.infos["omhatest_plain"].hooks == ["omha_resource_agents"]


@pytest.mark.parametrize("case", sorted(NOT_PLAIN))
def test_a_plugin_only_pluggy_can_judge_gets_the_pluggy_manager(site: Path, case: str) -> None:
    install(site, "omhatest_judged", NOT_PLAIN[case])
    if case == "an object":  # the entry point names the instance
        entry_points = site / "omhatest_judged-1.0.dist-info" / "entry_points.txt"
        entry_points.write_text("[omha]\nomhatest_judged = omhatest_judged:plugin\n")
    light, manager = get_registrations(), get_plugin_manager()
    assert not isinstance(light, Registrations)
    assert infos(light) == infos(manager)
    assert resolved(light) == resolved(manager)


def test_a_plugin_pluggy_refuses_is_reported_with_pluggys_message(site: Path) -> None:
    install(site, "omhatest_plain", PLAIN)
    install(site, "omhatest_bad", NOT_PLAIN["a registration hook taking an argument"])
    pm = get_registrations()
    error = pm.infos["omhatest_bad"].error or ""
    assert "PluginValidationError" in error and "config" in error  # pluggy refused it, naming the argument
    assert pm.infos["omhatest_plain"].error is None
    assert "plainagent" in registry(pm, "omha_resource_agents")  # the other plugins are read all the same


def test_one_module_behind_two_entry_points_gets_pluggys_refusal(site: Path) -> None:
    install(site, "omhatest_plain", PLAIN)
    entry_points = site / "omhatest_plain-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[omha]\nomhatest_plain = omhatest_plain\nomhatest_again = omhatest_plain\n")
    light, manager = get_registrations(), get_plugin_manager()
    assert not isinstance(light, Registrations)
    assert infos(light) == infos(manager)
    assert "already registered" in (light.infos["omhatest_again"].error or "")


def test_a_plugin_that_fails_to_import_is_reported_either_way(site: Path) -> None:
    install(site, "omhatest_broken", "import omhatest_no_such_module\n")
    light, manager = get_registrations(), get_plugin_manager()
    assert isinstance(light, Registrations)
    assert infos(light) == infos(manager)
    assert "ModuleNotFoundError" in (light.infos["omhatest_broken"].error or "")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tryfirst": True},
        {"trylast": True},
        {"optionalhook": True},
        {"hookwrapper": True},
        {"wrapper": True},
        {"specname": "omha_fence_devices"},
    ],
)
def test_hookimpl_marks_what_pluggys_marker_marks(options: dict[str, Any]) -> None:
    def ours() -> None: ...

    def theirs() -> None: ...

    if options:
        hookimpl(**options)(ours)
        pluggy.HookimplMarker("omha")(**options)(theirs)
    else:
        hookimpl(ours)
        pluggy.HookimplMarker("omha")(theirs)
    assert ours.omha_impl == theirs.omha_impl  # type: ignore[attr-defined]


@pytest.mark.parametrize("options", [{}, {"firstresult": True}, {"historic": True}])
def test_hookspec_marks_what_pluggys_marker_marks(options: dict[str, Any]) -> None:
    def ours() -> None: ...

    def theirs() -> None: ...

    hookspecs.hookspec(ours, **options)
    pluggy.HookspecMarker("omha")(**options)(theirs)
    assert ours.omha_spec == theirs.omha_spec  # type: ignore[attr-defined]


def test_pluggy_reads_the_core_markers() -> None:
    pm = get_plugin_manager()
    assert sorted(n for n in dir(hookspecs) if n.startswith("omha_")) == sorted(
        n for n in dir(pm.hook) if n.startswith("omha_") and pm.hook.__dict__[n].has_spec()
    )
    assert pm.infos["builtin.file_agent"].hooks == ["omha_resource_agents"]


def test_problem_is_an_immutable_value() -> None:
    """errors.Problem is written out rather than a frozen dataclass (no dataclasses, hence no inspect, at start-up);
    it keeps a frozen dataclass's behaviour."""
    p = Problem("cltab", 3, "bad")
    assert p == Problem(file="cltab", line=3, message="bad") and p != Problem("cltab", 4, "bad")
    assert len({p, Problem("cltab", 3, "bad")}) == 1
    assert str(p) == "cltab:3: bad" and str(Problem("omha.toml", 0, "bad")) == "omha.toml: bad"
    assert repr(p) == "Problem(file='cltab', line=3, message='bad')"
    with pytest.raises(AttributeError):
        p.line = 4  # type: ignore[misc]
    assert p != ("cltab", 3, "bad")


def test_lazy_values_are_left_as_they_are_until_used() -> None:
    reg = get_registrations()
    unresolved = registry(reg, "omha_resource_agents", resolve=False)
    assert isinstance(unresolved["file"][0], Lazy)
    assert all(isinstance(v, type) for v, _ in resolved(reg)["omha_resource_agents"].values())


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[timing]\ndead_after = -1\n", r"omha\.toml: \[timing\] dead_after: expected a positive number"),
        ("[etdc]\nendpoints = 1\n", r"omha\.toml: etdc: unknown key"),
        ('[etcd]\nendpoints = "not a url"\n', r"omha\.toml: \[etcd\] endpoints"),  # a plugin's section, checked
        ('[cluster]\nstore = "nosuch"\n', r"\[cluster\] store: 'nosuch' is not installed \(installed: .*etcd"),
        ('[http]\ntoken = ["hunter2-secret"]\n', r"omha\.toml: \[http\] token"),
    ],
)
def test_omha_status_still_names_the_file_and_key_of_a_bad_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, expected: str
) -> None:
    """``omha status`` reads the plugins without pluggy; the whole configuration is still validated, against
    every plugin's schema, with the same messages, and a secret's value is never shown."""
    import re

    from omha_core.cli import main

    (tmp_path / "shared").mkdir()
    config = tmp_path / "omha.toml"
    config.write_text(f'node = "n1"\n[sharedfs]\npath = "{tmp_path / "shared"}"\n{body}')
    assert main(["-c", str(config), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("omha status: ") and re.search(expected, err), err
    assert "hunter2" not in err
