"""NFS and CIFS sources recognised in mountinfo lines, without any network: which mount is ours, of the
right type, and what a release still finds of it.

The lines are shaped as Linux 6.x prints them for ``mount -t nfs``/``nfs4``/``cifs``/``smb3``: the kernel
keeps the source as mount(8) passed it, reports ``-t nfs`` with ``vers=4.x`` as ``nfs4``, and, since 4.18,
``-t smb3`` as ``smb3`` (older kernels: ``cifs``).
"""

from __future__ import annotations

import pytest
from omha_resource_mount import agent as agent_module
from omha_resource_mount.agent import MountAgent
from omha_resource_mount.mountinfo import MountEntry, parse_line
from omha_resource_mount.source import entry_matches


def agent(command: str) -> MountAgent:
    """The ``@mount`` agent of ``command`` (typed: ``from_command`` is declared on the base class)."""
    made = MountAgent.from_command(command)
    assert isinstance(made, MountAgent)
    return made


def nfs(source: str, target: str = "/srv/spool", fstype: str = "nfs4", opts: str = "rw", mid: int = 532) -> MountEntry:
    """A mountinfo line of an NFS mount (all NFS mounts of one server share a superblock: device 0:52)."""
    return parse_line(
        f"{mid} 30 0:52 / {target} {opts},relatime shared:290 - {fstype} {source} "
        f"{opts},vers=4.2,rsize=1048576,wsize=1048576,hard,proto=tcp,addr=192.0.2.10"
    )


def cifs(source: str, target: str = "/srv/share", fstype: str = "cifs", mid: int = 540, parent: int = 30) -> MountEntry:
    """A mountinfo line of a CIFS/SMB mount."""
    return parse_line(
        f"{mid} {parent} 0:60 / {target} rw,relatime shared:300 - {fstype} {source} "
        "rw,vers=3.1.1,cache=strict,username=web,addr=198.51.100.7,soft"
    )


@pytest.mark.parametrize(
    ("entry", "source", "ours"),
    [
        (nfs("nfs1:/export/spool"), "nfs1:/export/spool", True),
        (nfs("nfs1:/export/spool"), "nfs1:/export/spool/", True),  # a trailing slash in the cltab
        (nfs("nfs1:/export/spool/"), "nfs1:/export/spool", True),  # ...or in what mount.nfs passed on
        (nfs("nfs1:/export/spool"), "nfs1:/export", False),  # the parent export is another mount
        (nfs("nfs1:/export/spool"), "nfs1:/export/spool2", False),  # a prefix is not a match
        (nfs("nfs1:/export/spool"), "nfs2:/export/spool", False),  # another server
        (nfs("nfs1:/"), "nfs1:/", True),  # the root export (rstrip must not empty it)
        (nfs("[2001:db8::1]:/export"), "[2001:db8::1]:/export/", True),
        (nfs("[2001:db8::1]:/export"), "[2001:db8::2]:/export", False),
        (cifs("//files/web"), "//files/web", True),
        (cifs("//files/web"), "//files/web/", True),
        (cifs("//files/web"), "//files/web2", False),
        (cifs("//files/web"), "//files/other", False),
        (cifs("//files/web/sub"), "//files/web", False),  # a subdirectory of the share is not the share
    ],
)
def test_network_entries_match_their_source(entry: MountEntry, source: str, ours: bool) -> None:
    assert entry_matches(entry, source, None) is ours


def test_a_network_source_never_matches_by_device_number() -> None:
    # two exports of one server share a superblock, hence a device number: that must not tie them together
    one, two = nfs("nfs1:/export/a", "/srv/a"), nfs("nfs1:/export/b", "/srv/b", mid=533)
    assert (one.major, one.minor) == (two.major, two.minor)
    assert entry_matches(one, "nfs1:/export/a", None) and not entry_matches(two, "nfs1:/export/a", None)


@pytest.mark.parametrize(
    ("wanted", "kernel", "ok"),
    [
        ("nfs", "nfs", True),
        ("nfs", "nfs4", True),  # -t nfs negotiated NFSv4
        ("nfs4", "nfs4", True),
        ("nfs4", "nfs", False),  # asked for v4, got v3: not what the entry says
        ("cifs", "cifs", True),
        ("smb3", "smb3", True),
        ("smb3", "cifs", True),  # kernels before 4.18 report smb3 mounts as cifs
        ("cifs", "smb3", False),
        ("nfs", "cifs", False),
        ("auto", "nfs4", True),  # no type given: whatever mount(8) chose
    ],
)
def test_network_types_and_their_kernel_aliases(wanted: str, kernel: str, ok: bool) -> None:
    source = "//files/web" if wanted in ("cifs", "smb3") else "nfs1:/export/spool"
    mount = agent(f"{source} /srv/x type={wanted}")
    entry = cifs(source, "/srv/x", kernel) if kernel in ("cifs", "smb3") else nfs(source, "/srv/x", kernel)
    assert mount._type_ok(entry) is ok
    problem = mount._problem(entry)
    assert (problem is None) is ok
    if not ok:
        assert f"mounted as {kernel}, not type={wanted}" in str(problem)


def test_a_read_only_network_mount_is_a_problem_unless_asked() -> None:
    line = nfs("nfs1:/export/spool", opts="ro")
    assert "read-only" in str(agent("nfs1:/export/spool /srv/spool type=nfs")._problem(line))
    assert agent("nfs1:/export/spool /srv/spool type=nfs options=ro")._problem(line) is None


def test_a_network_agent_has_no_device_to_resolve() -> None:
    for command in ("nfs1:/export/spool /srv/spool", "//files/web /srv/share type=smb3", "x /srv/y type=nfs4"):
        mount = agent(command)
        assert mount.network and mount.device() is None, command


def test_monitor_on_network_mountinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    mount = agent("nfs1:/export/spool/ /srv/spool type=nfs")
    seen: list[MountEntry] = []
    monkeypatch.setattr(agent_module, "read_mounts", lambda: list(seen))
    assert mount.monitor() is False, "nothing mounted"
    seen[:] = [nfs("nfs1:/export/spool")]
    assert mount.monitor() is True
    seen[:] = [nfs("nfs1:/export/other")]
    assert mount.monitor() is False, "another export on our mount point"
    seen[:] = [nfs("nfs1:/export/spool", opts="ro")]
    assert mount.monitor() is False, "read-only"
    seen[:] = [nfs("nfs1:/export/spool"), cifs("//files/web", "/srv/spool", mid=600, parent=532)]
    assert mount.monitor() is False, "a CIFS share stacked on our NFS mount"


def test_what_a_release_still_finds_of_a_network_mount() -> None:
    mount = agent("nfs1:/export/spool /srv/spool type=nfs")
    ours = nfs("nfs1:/export/spool")
    bind = parse_line("600 30 0:52 /logs /var/log/web rw - nfs4 nfs1:/export/spool rw,addr=192.0.2.10")
    sibling = nfs("nfs1:/export/other", "/srv/other", mid=601)  # same superblock, another export: not ours
    cover = parse_line("602 532 0:70 / /srv/spool rw - tmpfs cover rw")

    assert mount.leftovers([sibling], None, False, {(0, 52)}) == []
    assert mount.leftovers([ours, sibling, bind], None, False, set()) == [
        "it is still mounted on /var/log/web (its directory /logs)"
    ]
    assert mount.leftovers([ours, cover], None, False, set()) == [
        "it is still mounted on /srv/spool, covered by cover (tmpfs) on /srv/spool mounted on top of it"
    ]
