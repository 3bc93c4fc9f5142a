"""The plugin contract is checked when a plugin registers, not at first use (issue 15).

A backend, agent or device class lacking a method the core calls is refused when its registration hook is read,
with the plugin's name and the missing method; every shipped plugin passes that check; ``hookimpl`` is one object
under every import path; hooks are called through :mod:`omha_core.hooks`; resource agents declare their
parameters with the shared validators of :mod:`omha_core.params`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from omha_core.config import validate_config
from omha_core.errors import ConfigError, ResourceError
from omha_core.plugins import CONTRACTS, get_plugin_manager, probe_registrations, registry
from tests.core.test_plugins import make_dist, site  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]

#: a site plugin whose agent has no monitor and whose device kind has no on: refused at load, both named
INCOMPLETE = """
from omha_core import hookimpl
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.resources import ResourceAgent


class HalfAgent(ResourceAgent):
    def acquire(self):
        pass

    def release(self):
        pass


class HalfPdu(FenceDevice):
    def off(self, targets):
        return FenceResult(ok=True)


class Stranger:
    pass


@hookimpl
def omha_resource_agents():
    return {"half": HalfAgent}


@hookimpl
def omha_fence_devices():
    return {"halfpdu": HalfPdu, "stranger": Stranger}
"""

#: the same plugin, complete
COMPLETE = """
from omha_core.hookspecs import hookimpl
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_core.resources import ResourceAgent


class WholeAgent(ResourceAgent):
    def acquire(self):
        pass

    def release(self):
        pass

    def monitor(self):
        return True


class WholePdu(FenceDevice):
    def off(self, targets):
        return FenceResult(ok=True)

    def on(self, targets):
        return FenceResult(ok=True)


@hookimpl
def omha_resource_agents():
    return {"whole": WholeAgent}


@hookimpl
def omha_fence_devices():
    return {"wholepdu": WholePdu}
"""


def test_an_incomplete_agent_and_device_are_refused_at_load_naming_plugin_and_method(site: Path) -> None:  # noqa: F811
    make_dist(site, "omha-half", "half", "omhatest_half", INCOMPLETE)
    pm = get_plugin_manager()
    assert "half" not in registry(pm, "omha_resource_agents")
    assert "file" in registry(pm, "omha_resource_agents")  # the other plugins' registrations still work
    assert set(registry(pm, "omha_fence_devices")).isdisjoint({"halfpdu", "stranger"})
    error = pm.infos["half"].error or ""
    assert "omha_resource_agents: 'half' (omhatest_half.HalfAgent) does not implement monitor" in error
    assert "omha_fence_devices: 'halfpdu' (omhatest_half.HalfPdu) does not implement on" in error
    assert "'stranger' (omhatest_half.Stranger) is not a subclass of omha_core.fence_devices.FenceDevice" in error
    # a configuration that names them fails when it is loaded, naming the plugin and the missing method
    shared = {"sharedfs": {"path": str(site)}}
    expected = r"\[agents.half\]: no resource agent @half.*failed to load: half \(.*'half'.*does not implement monitor"
    with pytest.raises(ConfigError, match=expected):
        validate_config({**shared, "agents": {"half": {}}}, "omha.toml", pm)
    device = {"name": "pdu", "kind": "halfpdu", "nodes": {"n1": "1"}}
    with pytest.raises(ConfigError, match=r"'halfpdu' is not installed.*half \(.*does not implement on"):
        validate_config({**shared, "fencing": {"devices": [device]}}, "omha.toml", get_plugin_manager())


#: the incomplete classes again, registered lazily by name (issue 19's start-up path): checked once imported
LAZY_INCOMPLETE = """
from omha_core import hookimpl
from omha_core.lazy import Lazy


@hookimpl
def omha_resource_agents():
    return {"lazyhalf": Lazy("omhatest_halfclasses:HalfAgent")}
"""


def test_a_lazily_registered_incomplete_agent_is_refused_once_imported(site: Path) -> None:  # noqa: F811
    (site / "omhatest_halfclasses.py").write_text(INCOMPLETE.replace("@hookimpl", "").split("def omha_")[0])
    make_dist(site, "omha-lazyhalf", "lazyhalf", "omhatest_lazyhalf", LAZY_INCOMPLETE)
    pm = get_plugin_manager()
    assert "lazyhalf" in registry(pm, "omha_resource_agents", resolve=False)  # not imported: nothing to check yet
    assert "lazyhalf" not in registry(pm, "omha_resource_agents")
    error = pm.infos["lazyhalf"].error or ""
    assert "'lazyhalf' (omhatest_halfclasses.HalfAgent) does not implement monitor" in error


def test_omha_plugins_lists_the_incomplete_plugin_as_failed(
    site: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from omha_core.cli import main

    make_dist(site, "omha-half", "half", "omhatest_half2", INCOMPLETE)
    assert main(["plugins"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("half "))
    assert "FAILED: " in line and "does not implement monitor" in line


def test_a_complete_plugin_loads(site: Path) -> None:  # noqa: F811
    make_dist(site, "omha-whole", "whole", "omhatest_whole", COMPLETE)
    pm = get_plugin_manager()
    agents, devices = registry(pm, "omha_resource_agents"), registry(pm, "omha_fence_devices")
    assert agents["whole"][1] == "whole" and devices["wholepdu"][1] == "whole"
    assert pm.infos["whole"].error is None
    device = {"name": "pdu", "kind": "wholepdu", "nodes": {"n1": "1"}}
    config = validate_config(
        {"sharedfs": {"path": str(site)}, "agents": {"whole": {}}, "fencing": {"devices": [device]}}, "omha.toml", pm
    )
    assert config.section("fencing")["devices"][0]["kind"] == "wholepdu"


def test_every_shipped_plugin_keeps_the_contract() -> None:
    pm = get_plugin_manager()
    probe_registrations(pm)
    shipped = {p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists()}
    builtins = {"builtin.sharedfs", "builtin.fence_command", "builtin.fence_agent", "builtin.file_agent"}
    assert shipped | builtins <= set(pm.infos), "every shipped plugin is installed in the venv"
    assert {name: info.error for name, info in pm.infos.items() if info.error} == {}
    counted = 0
    for hook, (module, cls) in CONTRACTS.items():
        base = getattr(__import__(module, fromlist=[cls]), cls)
        for name, (value, _plugin) in registry(pm, hook).items():
            if isinstance(value, type):
                assert issubclass(value, base) and not value.__abstractmethods__, (hook, name)
                counted += 1
    assert counted >= 12  # sharedfs x2, 3 builtin/agent classes, the 5 shipped agents and devices...
    # the backends registered as factories: the classes they build keep the contract too
    from omha_membership_etcd.membership import EtcdMembership
    from omha_membership_etcd.store import EtcdStore
    from omha_membership_openmosix.membership import OpenMosixMembership
    from omha_membership_openmosix.store import OpenMosixStore

    from omha_core.backends import Membership, Store

    for store in (EtcdStore, OpenMosixStore):
        assert issubclass(store, Store) and not store.__abstractmethods__
    for membership in (EtcdMembership, OpenMosixMembership):
        assert issubclass(membership, Membership) and not membership.__abstractmethods__


def test_the_bases_are_abstract() -> None:
    from omha_core.backends import Membership, Store
    from omha_core.fence_devices import FenceDevice
    from omha_core.resources import ResourceAgent

    assert {"acquire", "release", "monitor"} == ResourceAgent.__abstractmethods__
    assert {"off", "on"} == FenceDevice.__abstractmethods__
    assert {"publish", "statuses", "claim", "fence_lock", "put_fence_record"} <= Store.__abstractmethods__
    assert {"up_nodes"} == Membership.__abstractmethods__
    with pytest.raises(TypeError, match="monitor"):
        type("NoMonitor", (ResourceAgent,), {"acquire": lambda s: None, "release": lambda s: None})([], {}, {})


def test_hookimpl_is_one_object_under_every_import_path(site: Path) -> None:  # noqa: F811
    import omha_core
    from omha_core import hookspecs, metrics

    assert omha_core.hookimpl is hookspecs.hookimpl is metrics.hookimpl
    # a plugin written against either path registers its hooks
    old = INCOMPLETE.replace("from omha_core import hookimpl", "from omha_core import hookimpl as _h; hookimpl = _h")
    make_dist(site, "omha-old", "old", "omhatest_old", old)
    make_dist(site, "omha-new", "new", "omhatest_new", COMPLETE)
    pm = get_plugin_manager()
    assert pm.infos["old"].hooks == ["omha_fence_devices", "omha_resource_agents"]
    assert pm.infos["new"].hooks == ["omha_fence_devices", "omha_resource_agents"]


def test_every_hook_has_an_accessor_and_call_sites_use_them() -> None:
    from omha_core import hookspecs

    specs = {name for name in vars(hookspecs) if name.startswith("omha_")}
    accessors = (ROOT / "omha_core" / "hooks.py").read_text()
    assert {name for name in specs if f'"{name}"' not in accessors} == set()
    strings = re.compile(
        r'"(omha_(?:node_lost|node_fenced|fence_failed|group_moved|node_fitness|\w+_backends|'
        r'resource_agents|fence_devices|config_schema))"'
    )
    offenders = {
        path.name: strings.findall(path.read_text())
        for path in (ROOT / "omha_core").glob("*.py")
        # metrics.py names its Prometheus metrics like the hooks (omha_node_fenced)
        if path.name not in ("hooks.py", "plugins.py", "hookspecs.py", "metrics.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_notification_accessors_keep_containment(caplog: pytest.LogCaptureFixture) -> None:
    from omha_core import hooks
    from omha_core.hookspecs import hookimpl

    calls: list[str] = []

    class Raises:
        @hookimpl
        def omha_node_lost(self, node: str) -> None:
            calls.append(f"raises {node}")
            raise RuntimeError("broke")

    class Listens:
        @hookimpl
        def omha_node_lost(self, node: str, groups: list[str]) -> None:
            calls.append(f"listens {node} {groups}")

    pm = get_plugin_manager(extra=[Raises(), Listens()])
    hooks.notify_node_lost(pm, node="n2", observer="n1", groups=["web"])
    assert sorted(calls) == ["listens n2 ['web']", "raises n2"]
    assert "plugin Raises: omha_node_lost failed: RuntimeError: broke" in caplog.text


# -- resource agents' parameter schemas -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agent", "argstring", "message"),
    [
        ("vip", "192.0.2.10/24 arp_count=-1", "arp_count='-1': expected a whole number, 0 or more"),
        ("vip", "192.0.2.10/24 arp_count=2.5", "arp_count='2.5': expected a whole number, 0 or more"),
        ("vip", "192.0.2.10/24 dad=maybe", "dad='maybe': expected yes or no"),
        ("vip", "192.0.2.10/24 probe_timeout=0", "probe_timeout='0': expected a number of seconds, greater than zero"),
        ("vip", "192.0.2.10/24 arp_interval=4000", "arp_interval='4000': expected a number of seconds, zero or more"),
        ("vip", "192.0.2.10/24 monitor_interval=nan", "monitor_interval='nan': expected a number of seconds"),
        ("mount", "/dev/sda1 /mnt fsck=maybe", "@mount: fsck='maybe': expected yes or no"),
        ("mount", "/dev/sda1 /mnt kill_grace=-2", "@mount: kill_grace='-2': expected a number of seconds, greater"),
        ("mount", "/dev/sda1 /mnt probe_timeout=inf", "@mount: probe_timeout='inf': expected a number of seconds"),
    ],
)
def test_agent_schemas_reject_bad_parameters(agent: str, argstring: str, message: str) -> None:
    cls = registry(get_plugin_manager(), "omha_resource_agents")[agent][0]
    assert cls.params_schema, f"@{agent} declares its parameters"
    with pytest.raises(ResourceError, match=re.escape(message)):
        cls.from_command(argstring).validate()


def test_agent_schemas_take_site_defaults_and_work_inside_voluptuous() -> None:
    import voluptuous as vol
    from omha_resource_mount.agent import MountAgent
    from omha_resource_vip.agent import VipAgent

    vip = VipAgent.from_command("192.0.2.10/24 dad=off", {"arp_count": 3, "probe_timeout": 0.5})
    vip.validate()
    assert (vip.spec.arp_count, vip.spec.dad, vip.spec.probe_timeout) == (3, False, 0.5)
    with pytest.raises(ResourceError, match=re.escape("arp_count=True: expected a whole number, 0 or more")):
        VipAgent.from_command("192.0.2.10/24", {"arp_count": True}).validate()
    # the same schema is a voluptuous schema: it checks, converts, and keeps the message
    assert vol.Schema(MountAgent.params_schema)({"kill_grace": "2", "lazy": "yes"}) == {"kill_grace": 2.0, "lazy": True}
    with pytest.raises(vol.MultipleInvalid, match=r"expected yes or no.* @ data\['lazy'\]"):
        vol.Schema(MountAgent.params_schema)({"lazy": "perhaps"})


def test_a_valid_agent_entry_does_not_import_voluptuous() -> None:
    """Issue 19: each agent action runs in a child process; voluptuous is loaded on the error path only."""
    code = """
import json, sys
from omha_resource_mount.params import parse_spec as mount
from omha_resource_vip.spec import parse_spec as vip
vip(["192.0.2.10/24"], {"dad": "yes", "arp_count": "2"}, {"probe_timeout": 0.5})
mount(["/dev/sdb1", "/srv/x"], {"kill_grace": "2", "fsck": "no"}, {})
ok = "voluptuous" in sys.modules
try:
    vip(["192.0.2.10/24"], {"dad": "maybe"}, {})
except Exception as exc:
    error = str(exc)
print(json.dumps([ok, error, "voluptuous" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, "dad='maybe': expected yes or no", True]


def test_a_backend_factory_that_builds_something_else_is_refused_naming_its_plugin(tmp_path: Path) -> None:
    from omha_core.builtin.sharedfs import SharedDirStore
    from omha_core.hookspecs import hookimpl
    from omha_core.node import open_backends

    class Factories:
        @hookimpl
        def omha_store_backends(self) -> dict[str, object]:
            return {"dict": lambda config: {}, "real": lambda config: SharedDirStore(config)}

    pm = get_plugin_manager(extra=[Factories()])
    config = validate_config({"sharedfs": {"path": str(tmp_path)}, "cluster": {"store": "dict"}}, "omha.toml", pm)
    with pytest.raises(ConfigError, match=r"store backend .dict. of plugin .Factories. built a builtins\.dict, not a"):
        open_backends(config, pm)
    config = validate_config({"sharedfs": {"path": str(tmp_path)}, "cluster": {"store": "real"}}, "omha.toml", pm)
    store, membership = open_backends(config, pm)
    assert isinstance(store, SharedDirStore)
    membership.close()
    store.close()
