"""Plugin discovery: builtins, entry points, broken plugins isolated, blocking, and the hook meta-tests."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
from pathlib import Path

import pytest

from omha_core import hookimpl, hookspecs
from omha_core.errors import ConfigError
from omha_core.hooks import call_tagged
from omha_core.plugins import get_plugin_manager, lookup, registry

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("omha_"))


def make_dist(site: Path, dist: str, ep_name: str, module: str, source: str) -> None:
    """Install a plugin the way pip would, minus pip: a module and a dist-info with an entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"  # as pip names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[omha]\n{ep_name} = {module}\n")
    importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("omhatest_")]:
        del sys.modules[name]


def test_builtins_registered_like_plugins() -> None:
    pm = get_plugin_manager()
    assert pm.infos["builtin.sharedfs"].hooks == ["omha_membership_backends", "omha_store_backends"]
    assert "sharedfs" in registry(pm, "omha_store_backends")
    assert registry(pm, "omha_resource_agents")["file"][1] == "builtin.file_agent"


def test_broken_plugin_is_reported_and_skipped(site: Path) -> None:
    make_dist(site, "omha-broken", "broken", "omhatest_broken", "import nonexistent_module_xyz\n")
    make_dist(
        site,
        "omha-good",
        "good",
        "omhatest_good",
        """
        from omha_core import hookimpl
        @hookimpl
        def omha_node_fitness(group, node):
            return "maintenance window" if group == "db" else None
        """,
    )
    pm = get_plugin_manager()
    assert "ModuleNotFoundError" in (pm.infos["broken"].error or "")
    assert pm.infos["broken"].distribution == "omha-broken"
    assert pm.infos["good"].hooks == ["omha_node_fitness"] and pm.infos["good"].error is None
    # results are traced to the plugin that produced them; the implementation took fewer arguments
    assert call_tagged(pm, "omha_node_fitness", group="db", node="n1", config=None) == [("good", "maintenance window")]
    # a missing agent names the broken plugin as the likely cause
    with pytest.raises(ConfigError, match=r"unknown resource agent 'nope'.*failed to load: broken"):
        lookup(pm, "omha_resource_agents", "nope", "resource agent")


def test_block_list(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist(site, "omha-good", "good", "omhatest_good2", "x = 1\n")
    monkeypatch.setenv("OMHA_BLOCK_PLUGINS", "good, other")
    assert "good" not in get_plugin_manager().infos
    monkeypatch.delenv("OMHA_BLOCK_PLUGINS")
    monkeypatch.setenv("OMHA_AUTOLOAD_PLUGINS", "0")
    assert all(i.builtin for i in get_plugin_manager().infos.values())


def test_duplicate_registration_names_both_plugins() -> None:
    class Dup:
        @hookimpl
        def omha_resource_agents(self) -> dict[str, object]:
            from omha_core.builtin.file_agent import FileAgent

            return {"file": type("OtherFile", (FileAgent,), {})}  # a complete agent: only the name clashes

    pm = get_plugin_manager(extra=[Dup()])
    with pytest.raises(ConfigError, match=r"'file' is registered by both plugin 'builtin\.file_agent' and 'Dup'"):
        registry(pm, "omha_resource_agents")


def test_lazy_registration_is_imported_when_used_and_a_failed_import_marks_the_plugin_broken() -> None:
    """Registration hooks may name their classes (omha_core.lazy.Lazy) so that listing plugins imports none of
    them (issue 19); the registry resolves them, and one that cannot be imported is reported like a hook that
    raises: its plugin is marked broken, the name is left out, and lookup says which plugin failed."""
    from omha_core.lazy import Lazy
    from omha_core.plugins import probe_registrations

    class Named:
        @hookimpl
        def omha_resource_agents(self) -> dict[str, object]:
            return {"lazyfile": Lazy("omha_core.builtin.file_agent:FileAgent")}

    class Missing:
        @hookimpl
        def omha_fence_devices(self) -> dict[str, object]:
            return {"ghost": Lazy("omhatest_no_such_module.device:Ghost")}

    pm = get_plugin_manager(extra=[Named(), Missing()])
    probe_registrations(pm)  # what `omha plugins` does: calls the hooks, imports nothing they name
    assert pm.infos["Missing"].error is None
    from omha_core.builtin.file_agent import FileAgent

    assert lookup(pm, "omha_resource_agents", "lazyfile", "resource agent") is FileAgent
    kinds = registry(pm, "omha_fence_devices")
    assert "ghost" not in kinds and "command" in kinds  # the other plugins' kinds are still there
    assert "ModuleNotFoundError" in (pm.infos["Missing"].error or "")
    with pytest.raises(ConfigError, match=r"unknown fence device 'ghost'.*Missing"):
        lookup(pm, "omha_fence_devices", "ghost", "fence device")


def test_listing_plugins_imports_no_class_they_register() -> None:
    import subprocess

    code = (
        "import sys; from omha_core.plugins import get_plugin_manager, probe_registrations; "
        "probe_registrations(get_plugin_manager()); "
        "print(sorted(m for m in sys.modules if m.startswith(('omha_core.builtin.', 'voluptuous'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['omha_core.builtin.hooks']"


def test_bad_hook_signature_is_isolated() -> None:
    class Bad:
        @hookimpl
        def omha_node_lost(self, node: str, unknown_argument: int) -> None: ...

    pm = get_plugin_manager(extra=[Bad()])
    assert "unknown_argument" in (pm.infos["Bad"].error or "")


def test_no_plugin_loading_at_import_time() -> None:
    import subprocess

    code = "import sys, omha_core, omha_core.cli; print(any(m.startswith('omha_fence') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- meta-tests: every hook is documented, and every hook is exercised by a test ---------------------------


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    func = getattr(hookspecs, name)
    doc = inspect.getdoc(func) or ""
    assert "Called" in doc, f"{name}: say when the core calls it"
    params = [p for p in inspect.signature(func).parameters]
    for param in params:
        assert f":param {param}:" in doc, f"{name}: document :param {param}:"
    if not name.endswith(("_lost", "_fenced", "_failed", "_moved")):
        assert ":return:" in doc, f"{name}: document :return:"
    guide = (ROOT / "docs" / "writing-plugins.md").read_text()
    signature = f"{name}({', '.join(params)})"
    assert signature in guide, f"docs/writing-plugins.md must show {signature}"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_exercised_by_a_test(name: str) -> None:
    """Some test (other than these meta-tests) implements or calls the hook by name."""
    this = (ROOT / "tests" / "core" / "test_plugins.py").read_text().split("# -- meta-tests")[0]
    others = [p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_plugins.py"]
    assert any(re.search(rf"\b{name}\b", text) for text in [this, *others]), f"no test exercises {name}"


def test_fast_entry_point_reader_agrees_with_importlib_metadata(site: Path) -> None:
    """omha reads entry points itself (start-up time); it must find exactly what importlib.metadata finds."""
    from importlib.metadata import entry_points as stdlib_entry_points

    from omha_core.entrypoints import entry_points

    make_dist(site, "omha-extra", "extra", "omhatest_extra", "x = 1\n")
    ours = sorted((e.name, e.value, e.distribution, e.version) for e in entry_points("omha"))
    theirs = sorted(
        (e.name, e.value, e.dist.metadata["Name"] if e.dist else None, e.dist.version if e.dist else None)
        for e in stdlib_entry_points(group="omha")
    )
    assert ours == theirs
    assert ("extra", "omhatest_extra", "omha-extra", "1.0") in ours
