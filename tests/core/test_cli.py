"""The CLI skeleton: --help, --version, plugins, check — run as real subprocesses."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omha_core import __version__

DATA = Path(__file__).parent / "data"
OMHA = [sys.executable, "-m", "omha_core.cli"]


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    return subprocess.run([*OMHA, *args], capture_output=True, text=True, env=env, check=False, **kw)  # type: ignore[call-overload]


def test_help_and_version() -> None:
    out = run("--help")
    assert out.returncode == 0 and "check" in out.stdout and "plugins" in out.stdout
    assert run("--version").stdout.strip() == f"omha {__version__}"


def test_plugins_json_lists_builtins_and_installed() -> None:
    out = run("plugins", "--json")
    assert out.returncode == 0
    infos = {p["name"]: p for p in json.loads(out.stdout)}
    assert infos["builtin.sharedfs"]["distribution"] == "omha-core"
    assert "omha_store_backends" in infos["builtin.sharedfs"]["hooks"]
    assert all(p["error"] is None for p in infos.values()), infos


def test_check_broken_cltab_lists_every_error(tmp_path: Path) -> None:
    out = run("check", "--cltab", str(DATA / "cltab.broken"))
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith(str(DATA / "cltab.broken"))]
    assert [int(line.split(":")[1]) for line in errors] == [3, 4, 5, 6, 7, 8, 9]


def test_check_valid_files_and_unknown_agent(tmp_path: Path) -> None:
    hactl = tmp_path / "hactl"
    hactl.write_text("foo run\nweb start\nghost run\nbar\n")
    out = run("check", "--cltab", str(DATA / "cltab.syntax"), "--hactl", str(hactl))
    assert out.returncode == 0, out.stderr
    assert "group 'ghost' is not defined" in out.stderr
    assert f"warning: {hactl}:4: group 'bar' has no level: it means 'stop'" in out.stderr
    assert "setting 'log': ignored" in out.stderr
    cltab = tmp_path / "cltab"
    cltab.write_text("web:ip:start:wait:@nosuchagent 1.2.3.4\nweb:f:start:wait:@file relative/path\n")
    out = run("check", "--cltab", str(cltab))
    assert out.returncode == 1
    assert f"{cltab}:1: unknown resource agent @nosuchagent" in out.stderr
    assert f"{cltab}:2: @file: 'relative/path' is not an absolute path" in out.stderr


def test_check_invalid_config(tmp_path: Path) -> None:
    cfg = tmp_path / "omha.toml"
    cfg.write_text('node = "n 1"\n[timing]\nheartbeat = "fast"\n')
    out = run("-c", str(cfg), "check")
    assert out.returncode == 1
    assert f"{cfg}: node: expected a name of letters, digits" in out.stderr
    assert f"{cfg}: [timing] heartbeat: expected a positive number of seconds, got 'fast'" in out.stderr


def test_check_names_a_sharedfs_cluster_without_its_path(tmp_path: Path) -> None:
    cfg = tmp_path / "omha.toml"
    cfg.write_text('node = "n1"\n')
    out = run("-c", str(cfg), "check")
    assert out.returncode == 1
    assert f"{cfg}: [sharedfs] path: required when store or membership is 'sharedfs'" in out.stderr
    cfg.write_text(f'node = "n1"\n[sharedfs]\npath = "{tmp_path}"\n')
    assert run("-c", str(cfg), "check").returncode == 0


def test_check_with_two_plugins_registering_one_agent_says_so_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from omha_core import cli, hookimpl, plugins
    from omha_core.builtin.file_agent import FileAgent

    class Clash:
        @hookimpl
        def omha_resource_agents(self) -> dict[str, object]:
            return {"file": FileAgent}

    make = plugins.get_plugin_manager

    def with_clash() -> object:
        pm = make()
        pm.register(Clash(), name="site_clash")
        return pm

    monkeypatch.setattr(plugins, "get_plugin_manager", with_clash)
    monkeypatch.delenv("OMHA_CONFIG", raising=False)
    cltab = tmp_path / "cltab"
    cltab.write_text("web:f:start:wait:@file /tmp/x\n")
    assert cli.main(["check", "--cltab", str(cltab)]) == 1
    err = capsys.readouterr().err
    assert f"{cltab}: cannot check: omha_resource_agents: 'file' is registered by both plugin" in err
    assert "site_clash" in err and "Traceback" not in err


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_parser_built_for_one_command_is_that_command_of_the_full_parser() -> None:
    """main() builds only the parser of the command it runs (issue 19, CLI start-up); the command's options,
    defaults and help must be exactly those of the full parser (what --help, the man page and completions show)."""
    from omha_core.cli import COMMANDS, build_parser

    full = _subparsers(build_parser())
    assert set(full) == COMMANDS  # a new command must be added to COMMANDS, or it would be built lazily never
    for name, sub in full.items():
        only = _subparsers(build_parser(name))
        assert list(only) == [name]
        assert only[name].format_help() == sub.format_help()
        assert only[name]._defaults == sub._defaults  # the handler (func) among them


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["status"], "status"),
        (["-c", "x.toml", "plugins"], "plugins"),
        (["--conf", "x.toml", "status", "--json"], "status"),
        (["--config=x.toml", "tell", "g", "1"], "tell"),
        (["-cx.toml", "local", "status"], "local"),
        (["-c", "status", "plugins"], "plugins"),  # a config file named like a command
        (["-h", "status"], None),  # the top-level help lists every command
        (["--version"], None),
        (["stauts"], None),  # argparse's "invalid choice" lists every command
        ([], None),
    ],
)
def test_command_in(argv: list[str], command: str | None) -> None:
    from omha_core.cli import command_in

    assert command_in(argv) == command
