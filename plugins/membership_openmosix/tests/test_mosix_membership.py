"""Membership from the kernel's node table, this node's number from whois, and the ``[openmosix]`` options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omha_membership_openmosix.hastat import Silence
from omha_membership_openmosix.hpc import node_table, parse_whois
from omha_membership_openmosix.membership import OpenMosixMembership
from omha_membership_openmosix.store import OpenMosixStore
from omha_testing.mosix import FakeMosix, plugin_manager, whois_command

from omha_core.backends import Store
from omha_core.errors import ConfigError
from omha_core.plugins import get_plugin_manager, lookup, registry


def membership(mosix: FakeMosix, node: int | str | None = 1, **overrides: Any) -> OpenMosixMembership:
    config = mosix.config(node, **overrides)
    return OpenMosixMembership(config, OpenMosixStore(config))


def test_a_node_is_up_when_its_status_has_bit_value_2(mosix: FakeMosix) -> None:
    statuses: dict[int, int | str] = {1: 3, 2: 2, 3: 1, 4: 0, 5: 6, 6: 4, 7: " 7 \n", 8: 1 << 40 | 2}
    for node, status in statuses.items():
        mosix.add_node(node, status)
    assert membership(mosix).up_nodes() == {"1", "2", "5", "7", "8"}


def test_unreadable_vanished_and_garbage_entries_are_down_not_errors(mosix: FakeMosix) -> None:
    mosix.add_node(4, "up\n")  # garbage
    mosix.add_node(5, "")  # empty
    mosix.add_node(6, "-2\n")  # negative: not a status
    mosix.add_node(7, "0x3\n")  # not decimal
    mosix.status_path(8).parent.mkdir()  # no status file
    mosix.status_path(9).mkdir(parents=True)  # status is a directory
    mosix.status_path(10).parent.mkdir()
    mosix.status_path(10).symlink_to(mosix.root / "vanished")  # entry whose target is gone
    mosix.add_node("foo", 3)  # not a node number: ignored
    mosix.add_node("1a", 3)
    (mosix.hpcbase / "nodes" / "11").write_text("3\n")  # a file where a node directory should be
    m = membership(mosix)
    assert m.up_nodes() == {"1", "2", "3"}
    table = node_table(str(mosix.hpcbase))
    assert set(table) == {str(n) for n in range(1, 12)}
    assert [n for n, up in table.items() if up] == ["1", "2", "3"]


def test_no_node_table_means_everybody_down_and_not_a_member(mosix: FakeMosix) -> None:
    m = membership(mosix)
    m.open()
    assert m.is_member()
    os.rename(mosix.hpcbase / "nodes", mosix.root / "nodes.gone")
    assert m.up_nodes() == set()
    assert not m.is_member()


def test_is_member_follows_this_nodes_own_bit(mosix: FakeMosix) -> None:
    m = membership(mosix, 2)
    assert m.is_member()
    mosix.down(2)
    assert not m.is_member()
    assert m.up_nodes() == {"1", "3"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def heartbeat(store: Store, node: str, seq: int) -> None:
    store.publish(node, {"node": node, "incarnation": f"inc{node}", "seq": seq, "groups": {}})


def test_up_nodes_leave_out_nodes_whose_status_stops_changing_for_timeout(mosix: FakeMosix) -> None:
    """The original's ``timeout``: up in the kernel but not publishing (daemon dead or hung) is not up.
    The daemon reads the statuses through the store every cycle just before asking for the up nodes."""
    mosix.add_node(4)  # up in the kernel, never runs a daemon: the original counted it for its quorum
    m = membership(mosix, 1, timeout=30)
    assert isinstance(m.store, OpenMosixStore)
    clock = Clock()
    m.store.silence = Silence(clock)
    m.store.open()
    for node in ("1", "2", "3"):
        heartbeat(m.store, node, 1)
    m.store.statuses()
    assert m.up_nodes() == {"1", "2", "3", "4"}  # nobody has been silent for 30 s yet
    clock.now += 20
    heartbeat(m.store, "2", 2)
    m.store.statuses()
    assert m.up_nodes() == {"1", "2", "3", "4"}
    clock.now += 15  # node 3 and node 4 silent for 35 s, node 2 for 15 s; this node never judges itself
    m.store.statuses()
    assert m.up_nodes() == {"1", "2"}
    assert m.is_member()
    heartbeat(m.store, "3", 2)  # node 3's daemon is back
    m.store.statuses()
    assert m.up_nodes() == {"1", "2", "3"}
    mosix.down(2)  # and the kernel still has the last word
    assert m.up_nodes() == {"1", "3"}


def test_timeout_also_applies_with_another_store(mosix: FakeMosix, tmp_path: Path) -> None:
    """With the sharedfs store the membership reads the statuses itself to judge ``timeout``."""
    from omha_core.builtin.sharedfs import SharedDirStore
    from omha_core.config import validate_config

    shared = tmp_path / "shared"
    shared.mkdir()
    raw = mosix.raw_config(1, timeout=30)
    raw["cluster"]["store"] = "sharedfs"
    raw["sharedfs"] = {"path": str(shared)}
    config = validate_config(raw, "omha-1.toml", plugin_manager())
    store = SharedDirStore(config)
    store.open()
    m = OpenMosixMembership(config, store)
    clock = Clock()
    m.silence = Silence(clock)
    for node in ("1", "2", "3"):
        heartbeat(store, node, 1)
    assert m.up_nodes() == {"1", "2", "3"}
    clock.now += 31
    heartbeat(store, "2", 2)
    assert m.up_nodes() == {"1", "2"}


def test_open_without_an_openmosix_kernel_says_so(tmp_path: Path) -> None:
    mosix = FakeMosix(tmp_path)
    m = membership(mosix, 1, hpcbase=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"nowhere/nodes is not a directory: is the openMosix kernel running"):
        m.open()


def test_local_node_is_the_first_run_of_digits_of_whois(mosix: FakeMosix) -> None:
    assert membership(mosix, None, whois=whois_command(2)).local_node() == "2"
    assert membership(mosix, None, whois="echo 'node 032 of 64'").local_node() == "32"
    assert membership(mosix, None, whois="printf 'This is MOSIX #7\\n'").local_node() == "7"


def test_node_in_omha_toml_overrides_whois(mosix: FakeMosix) -> None:
    m = membership(mosix, 3, whois="/nonexistent/mosctl whois")  # never run
    assert m.local_node() == "3"
    m.open()


@pytest.mark.parametrize(
    ("whois", "message"),
    [
        ("echo This is MOSIX", r"'echo This is MOSIX' printed 'This is MOSIX', which holds no node number"),
        ("echo This is MOSIX #0", r"node number 0, which is not an openMosix node"),
        ("/nonexistent/mosctl whois", r"'/nonexistent/mosctl' not found \(is openMosix installed\?\)"),
        ("sh -c 'echo no such node >&2; exit 3'", r"exited with status 3: no such node"),
        ("true", r"printed 'nothing', which holds no node number"),
    ],
)
def test_whois_failures_are_clear_errors(mosix: FakeMosix, whois: str, message: str) -> None:
    m = membership(mosix, None, whois=whois)
    with pytest.raises(ConfigError, match=message) as err:
        m.open()
    assert 'set node = "<number>" in omha.toml' in str(err.value)


def test_parse_whois_takes_the_first_number() -> None:
    assert parse_whois("This is MOSIX #32\n", "mosctl whois") == "32"
    assert parse_whois("MOSIX #5 of 12", "x") == "5"
    with pytest.raises(ConfigError, match="holds no node number"):
        parse_whois("", "mosctl whois")


def test_a_node_name_that_is_not_a_number_is_refused(mosix: FakeMosix) -> None:
    for bad in ("n1", "02", "0"):
        with pytest.raises(ConfigError, match=r"named by its openMosix node number"):
            membership(mosix, bad).local_node()


def test_openmosix_section_defaults(mosix: FakeMosix) -> None:
    from omha_core.config import validate_config

    cfg = validate_config({"node": "1"}, "omha.toml", plugin_manager())
    assert dict(cfg.section("openmosix")) == {
        "hpcbase": "/proc/hpc",
        "mfsbase": "/mfs",
        "varpath": "var/mosix-ha",
        "whois": "mosctl whois",
        "timeout": 60.0,
    }
    cfg = mosix.config(1, varpath="/opt/ha/", timeout=5)
    assert cfg.section("openmosix")["varpath"] == "opt/ha"
    assert cfg.section("openmosix")["timeout"] == 5.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("timeout", -1, "[openmosix] timeout: expected a positive number of seconds, got -1"),
        ("whois", "", "[openmosix] whois: expected a command line such as 'mosctl whois', got an empty string"),
        ("whois", "mosctl 'whois", "[openmosix] whois: expected a command line such as 'mosctl whois'"),
        ("varpath", "../etc", "[openmosix] varpath: expected a directory below each node's root"),
        ("mfsbase", 3, "[openmosix] mfsbase: expected a file or directory path, got 3"),
        ("hpcbas", "/proc/hpc", "[openmosix] hpcbas: unknown key"),
    ],
)
def test_openmosix_section_errors_name_the_key(mosix: FakeMosix, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        mosix.config(1, **{key: value})
    assert message in str(err.value)


def test_registered_under_openmosix_through_the_entry_point(mosix: FakeMosix) -> None:
    pm = get_plugin_manager()
    info = pm.infos["membership_openmosix"]
    assert info.error is None
    assert info.distribution == "omha-membership-openmosix"
    assert info.hooks == ["omha_config_schema", "omha_membership_backends", "omha_store_backends"]
    # registered as factories that import the backends when called (loading the plugin stays cheap)
    config = mosix.config(1)
    store = lookup(pm, "omha_store_backends", "openmosix", "store")(config)
    assert isinstance(store, OpenMosixStore)
    membership = lookup(pm, "omha_membership_backends", "openmosix", "membership")(config, store)
    assert isinstance(membership, OpenMosixMembership)
    assert "openmosix" in registry(pm, "omha_config_schema")


def test_omha_plugins_lists_it() -> None:
    omha = Path(sys.executable).with_name("omha")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMHA_")}
    out = subprocess.run([str(omha), "plugins", "--json"], capture_output=True, text=True, env=env, check=True)
    infos = {p["name"]: p for p in json.loads(out.stdout)}
    assert infos["membership_openmosix"]["error"] is None
    assert "omha_store_backends" in infos["membership_openmosix"]["hooks"]
