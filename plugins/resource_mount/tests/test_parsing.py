"""Parsing without root: the ``@mount`` command line, mountinfo lines and source kinds."""

from __future__ import annotations

import pytest
from omha_resource_mount.agent import MountAgent
from omha_resource_mount.mountinfo import mounts_beneath, parse_line, top_mount_at
from omha_resource_mount.params import parse_spec
from omha_resource_mount.source import fstype_available, is_network, tag_of, udev_encode

from omha_core.errors import ResourceError
from omha_core.plugins import get_plugin_manager, lookup


def test_the_plugin_registers_the_mount_agent() -> None:
    assert lookup(get_plugin_manager(), "omha_resource_agents", "mount", "resource agent") is MountAgent


def test_label_and_uuid_words_are_the_device_not_parameters() -> None:
    agent = MountAgent.from_command("LABEL=www /srv/www type=ext4 options=noatime,nodev fsck=yes")
    assert isinstance(agent, MountAgent)
    assert agent.spec.source == "LABEL=www"
    assert agent.spec.target == "/srv/www"
    assert (agent.spec.fstype, agent.spec.options, agent.spec.fsck) == ("ext4", "noatime,nodev", True)
    # an agent built by the generic ResourceAgent split gets its tag back as the device too
    generic = MountAgent(["/srv/www"], {"UUID": "1234-abcd", "mkdir": "yes"}, {})
    assert (generic.spec.source, generic.spec.mkdir) == ("UUID=1234-abcd", True)


def test_defaults_come_from_omha_toml_and_the_entry_overrides_them() -> None:
    spec = parse_spec(["/dev/sdb1", "/srv/x/"], {"kill_grace": "2"}, {"kill_grace": 9, "probe": True})
    assert spec.target == "/srv/x"
    assert (spec.kill_grace, spec.probe, spec.kill, spec.lazy, spec.fstype) == (2.0, True, True, False, None)
    assert not spec.read_only
    assert parse_spec(["/dev/sdb1", "/srv/x"], {"options": "noatime,ro"}, {}).read_only
    with pytest.raises(ResourceError, match=r"omha.toml \[agents.mount\]: unknown parameter\(s\) grace"):
        parse_spec(["/dev/sdb1", "/srv/x"], {}, {"grace": 3})
    with pytest.raises(ResourceError, match="probe_timeout='0': expected a number of seconds, greater than zero"):
        parse_spec(["/dev/sdb1", "/srv/x"], {"probe_timeout": "0"}, {})


def test_mountinfo_lines_with_optional_fields_and_escaped_blanks() -> None:
    line = r"36 35 98:0 /mnt1 /mnt/with\040blank rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue"
    entry = parse_line(line)
    assert (entry.mount_id, entry.parent_id, entry.major, entry.minor) == (36, 35, 98, 0)
    assert entry.target == "/mnt/with blank" and entry.root == "/mnt1"
    assert (entry.fstype, entry.source) == ("ext3", "/dev/root")
    assert not entry.read_only
    assert parse_line("40 36 0:50 / /x rw - tmpfs t ro").read_only, "a read-only superblock counts"
    with pytest.raises(ValueError):
        parse_line("garbage")


def test_the_mount_on_top_of_a_stack_is_the_visible_one() -> None:
    base = parse_line("50 1 7:0 / /srv rw - ext4 /dev/loop0 rw")
    over = parse_line("60 50 0:40 / /srv rw - tmpfs over rw")
    sub = parse_line("70 50 0:41 / /srv/sub rw - tmpfs sub rw")
    assert top_mount_at("/srv", [over, base, sub]) == over
    assert top_mount_at("/srv", [base, sub]) == base
    assert top_mount_at("/other", [base]) is None
    assert mounts_beneath(base, [base, over, sub]) == [over, sub]


@pytest.mark.parametrize(
    ("source", "fstype", "network"),
    [
        ("server:/export", None, True),
        ("[2001:db8::1]:/export", None, True),
        ("//server/share", None, True),
        ("anything", "nfs4", True),
        ("/dev/sdb1", None, False),
        ("LABEL=a:/b", None, False),
        ("/srv/images/disk.img", "ext4", False),
    ],
)
def test_network_sources_are_told_apart(source: str, fstype: str | None, network: bool) -> None:
    assert is_network(source, fstype) is network


def test_tags_and_their_udev_spelling() -> None:
    assert tag_of("LABEL=www") == ("LABEL", "www")
    assert tag_of('UUID="ab-12"') == ("UUID", "ab-12")
    assert tag_of("/dev/sda") is None
    assert udev_encode("my disk/1") == r"my\x20disk\x2f1"


def test_filesystem_types_known_to_this_kernel() -> None:
    with open("/proc/filesystems") as fh:
        known = fh.read().split()[-1]
    assert fstype_available(known)
    assert not fstype_available("omhafs")
