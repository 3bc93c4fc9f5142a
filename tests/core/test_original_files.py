"""The original distributions' own example files (tests/data/original, see its README): every cltab and hactl
passes ``omha check``, and they run through omha's init as Cluster::Init and OpenMosix::HA ran them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from omha_core.cli import main
from omha_core.cltab import parse_cltab
from omha_core.init import DONE, FAILED, PASSED
from tests.core.init_helpers import run, running_init, wait_until

ORIGINAL = Path(__file__).parent.parent / "data" / "original"
CLTABS = sorted(
    p for p in ORIGINAL.rglob("*") if p.is_file() and (p.name.startswith(("cltab", "clinittab")) or p.name == "blank")
)
HACTLS = sorted(ORIGINAL.rglob("hactl"))
MFS1 = ORIGINAL / "OpenMosix-HA-0.555/t/master/mfs1/1/var/mosix-ha"


def test_the_files_are_all_there() -> None:
    assert len(CLTABS) == 9 and len(HACTLS) == 3


@pytest.mark.parametrize("path", CLTABS, ids=lambda p: str(p.relative_to(ORIGINAL)))
def test_every_cltab_passes_omha_check(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMHA_CONFIG", raising=False)
    assert main(["check", "--cltab", str(path)]) == 0
    assert f"ok: {path}" in capsys.readouterr().out


@pytest.mark.parametrize("path", HACTLS, ids=lambda p: str(p.relative_to(ORIGINAL)))
def test_every_hactl_passes_omha_check_with_the_cltab_the_node_runs(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMHA_CONFIG", raising=False)
    # OpenMosix::HA copies the newest cltab to every node; node 2 of mfs1 has none of its own
    cltab = path.with_name("cltab") if path.with_name("cltab").exists() else MFS1 / "cltab"
    assert main(["check", "--cltab", str(cltab), "--hactl", str(path)]) == 0
    captured = capsys.readouterr()
    assert "ok:" in captured.out
    if path.parent == MFS1:  # 'pln' is in hactl but not in the cltab: the original ignores it too
        assert "group 'pln' is not defined" in captured.err


def test_openmosix_ha_cltab_runs_as_the_monitor_would_run_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each group of node 1's hactl goes plan -> test -> its hactl level, as OpenMosix::HA's scangroups moves it
    (a FAILED test stops the group); then 'sig' runs its start entry and, told stop, its cleanup entry."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    cltab = (MFS1 / "cltab").read_text()
    hactl = dict(line.split() for line in (MFS1 / "hactl").read_text().splitlines())
    defined = parse_cltab(cltab).groups

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            final = {}
            for group, level in hactl.items():
                if group not in defined:
                    continue
                init.tell(group, "plan")
                assert await init.wait_settled(group, 15) == DONE
                init.tell(group, "test")
                if await init.wait_settled(group, 15) == FAILED:
                    init.tell(group, "stop")
                else:
                    init.tell(group, level)
                final[group] = (init.level(group), await init.wait_settled(group, 15))
            assert final == {
                "foo": ("start", DONE),
                "bar": ("2", DONE),
                "baz": ("start", DONE),
                "bad": ("stop", DONE),  # its test, /bin/false, failed
                "new": ("start", DONE),
            }
            assert init.status()["baz"]["entries"]["baz1"]["state"] == "stopped"  # passed at test, not run at start
            assert not (tmp_path / "t" / "out2").exists()  # bad2 never started: bad failed its test
            # bar1 (once) writes t/out for a second in the background: let it finish first
            await wait_until(lambda: init.status()["bar"]["entries"]["bar1"]["state"] == "exited", what="bar1")
            init.tell("sig", "start")
            assert await init.wait_settled("sig", 15) == DONE
            assert (tmp_path / "t" / "out").read_text() == "sig starting\n"
            init.tell("sig", "stop")
            assert await init.wait_settled("sig", 15) == DONE
            assert (tmp_path / "t" / "out").read_text() == "sig stopping\n"
            assert init.status()["sig"]["entries"]["sig2"]["state"] == "done"

    run(scenario())


def test_cluster_init_cltab_master_runs_as_its_tests_ran_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cases of Cluster::Init's own tests that take under two seconds: 20wait (hello1), 25long and 60multichar
    (long levels), 80test (htest1-3 at levels f and t), 0233passfail (test5 and test6 one after the other)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    out = tmp_path / "t" / "out"
    cltab = (ORIGINAL / "Cluster-Init-0.215/t/cltab.master").read_text()

    async def scenario() -> None:
        async with running_init(cltab) as (init, _):
            for level, text in (("1", "hello world!\n"), ("long1", "long\n"), ("5", "long\n"), ("long3", "long3\n")):
                init.tell("hellogrp", level)
                assert await init.wait_settled("hellogrp", 15) == DONE, level
                if level != "1":
                    assert out.read_text() == text, level
            assert out.read_text() == "long3\n"
            init.tell("hellogrp", "f")
            assert await init.wait_settled("hellogrp", 15) == FAILED
            entries = init.status()["hellogrp"]["entries"]
            assert (entries["htest1"]["state"], entries["htest2"]["state"]) == ("passed", "failed")
            init.tell("hellogrp", "t")
            assert await init.wait_settled("hellogrp", 15) == PASSED
            init.tell("test", "3")
            assert await init.wait_settled("test", 15) == PASSED
            entries = init.status()["test"]["entries"]
            assert (entries["test5"]["state"], entries["test6"]["state"]) == ("passed", "passed")
            init.tell("scramjet", "1")
            assert await init.wait_settled("scramjet", 15) == DONE
            assert out.read_text().strip()  # `date > t/out`

    run(scenario())


def test_the_earlier_clinittab_form_runs_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMosix::HA's earlier clinittab writes its levels 'start,' and 'test,' (one long level each)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    path = ORIGINAL / "earlier/OpenMosix-HA/t/master/mfs1/1/var/mosix-ha/clinittab"
    shutil.copy(path, tmp_path / "clinittab")

    async def scenario() -> None:
        async with running_init((tmp_path / "clinittab").read_text()) as (init, _):
            init.tell("foo", "start")
            assert await init.wait_settled("foo", 15) == DONE
            assert (tmp_path / "t" / "out").read_text() == "hello world!\n"
            init.tell("bad", "test")
            assert await init.wait_settled("bad", 15) == FAILED

    run(scenario())
