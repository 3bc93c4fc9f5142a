"""Shell completion and man page, generated at build time from the argparse definitions
(``scripts/gen-cli-docs``, run by ``make venv``): bash completes subcommands and options, the man page renders
and documents every command, and building the parser imports none of the generators."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from omha_core.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("move", "unmove", "standby", "unstandby", "cleanup", "status", "tell", "check", "fence")


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def share(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("share")
    subprocess.run(
        ["sh", str(ROOT / "scripts" / "gen-cli-docs"), str(Path(sys.executable).parent), str(out)], check=True
    )
    return out


def complete(script: Path, *words: str) -> list[str]:
    """What bash completion offers for the last of ``words`` (the command line typed so far)."""
    line = " ".join(shlex.quote(w) for w in words)
    program = f"""
source {shlex.quote(str(script))}
fn=$(complete -p omha | sed -E 's/.* -F ([^ ]+) .*/\\1/')
COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="${{COMP_WORDS[*]}}"; COMP_POINT=${{#COMP_LINE}}
COMPREPLY=()
"$fn" omha "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True, check=True)
    return sorted(w for w in out.stdout.split("\n") if w)


def test_bash_completes_subcommands_options_and_choices(share: Path) -> None:
    script = share / "bash-completion" / "completions" / "omha"
    assert complete(script, "omha", "") == subcommands()
    assert complete(script, "omha", "st") == ["standby", "status"]
    assert complete(script, "omha", "un") == ["unmove", "unstandby"]
    assert "--check" in complete(script, "omha", "status", "--")
    assert {"--wait", "--timeout", "--json"} <= set(complete(script, "omha", "tell", "--"))
    assert complete(script, "omha", "show", "") == ["cltab", "hactl"]


def test_zsh_completion_names_every_subcommand(share: Path) -> None:
    text = (share / "zsh" / "site-functions" / "_omha").read_text()
    assert text.startswith("#compdef omha")
    for cmd in subcommands():
        assert f"\n    {cmd}:'" in text, cmd


def test_man_page_renders_and_documents_every_command(share: Path) -> None:
    page = share / "man" / "man1" / "omha.1"
    env = {**os.environ, "MANWIDTH": "100", "MAN_KEEP_FORMATTING": "0"}
    out = subprocess.run(["man", "-l", "-P", "cat", str(page)], capture_output=True, text=True, env=env, check=True)
    text = re.sub(".\x08", "", out.stdout)  # no bold/underline overstrikes
    assert "OMHA(1)" in text and "EXIT STATUS" in text and "3 UNKNOWN" in text
    for cmd in subcommands():
        assert f"omha {cmd}" in text, cmd
    assert "--check" in text and "--wait" in text


def test_make_installed_them_into_the_environment() -> None:
    """``make venv`` (and so ``make test``) installs the generated files under the environment's share/."""
    share = Path(sys.prefix) / "share"
    installed = [
        share / "bash-completion" / "completions" / "omha",
        share / "zsh" / "site-functions" / "_omha",
        share / "man" / "man1" / "omha.1",
    ]
    missing = [str(p) for p in installed if not p.exists()]
    assert not missing, f"not installed (run `make venv`): {missing}"
    for path in installed:
        assert all(cmd in path.read_text() for cmd in COMMANDS), f"{path} is stale: run `make venv`"


def test_building_the_parser_imports_no_generator_or_validator() -> None:
    code = (
        "import sys; from omha_core.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('shtab', 'build_manpages', 'jsonschema')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
