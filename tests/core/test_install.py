"""The install path (scripts/install, `make install`) on a fresh clone, into a temporary prefix and root.

The tree is cloned from the working copy's tracked files (what a fresh ``git clone`` has: no .venv, no build
leftovers); the script builds a venv with the core and two plugins and lays out the unit, the link on PATH and
the docs under a temporary root. The installed ``omha`` then runs on its own, outside this test's venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def fresh_clone(dest: Path) -> Path:
    """Copy the tracked files of the working copy (with their current content) to ``dest``."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def test_install_into_a_prefix_gives_a_working_omha(tmp_path: Path) -> None:
    src = fresh_clone(tmp_path / "src")
    generated = (src / "scripts" / "gen-cli-docs").exists()
    prefix, root = tmp_path / "opt" / "omha", tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "OMHA_", "PYTHON"))}
    # the system's python3 as an admin would run it, not this test's venv
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(sys.prefix))
    out = subprocess.run(
        ["make", "-C", str(src), "install", f"PREFIX={prefix}", "PLUGINS=resource_vip fence_x10"],
        env={**env, "ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    omha = prefix / "bin" / "omha"
    assert subprocess.run([str(omha), "--version"], capture_output=True, text=True, check=True).stdout.startswith(
        "omha "
    )
    plugins = json.loads(subprocess.run([str(omha), "plugins", "--json"], capture_output=True, check=True).stdout)
    names = {p["name"] for p in plugins if not p.get("error")}
    assert {"resource_vip", "fence_x10"} <= names and "fence_powerstrip" not in names
    # the status page ships with the package (package-data)
    page = "from importlib.resources import files; print(len(files('omha_core.web').joinpath('page.html').read_text()))"
    assert int(subprocess.run([str(prefix / "bin" / "python"), "-c", page], capture_output=True, check=True).stdout) > 0
    # installed, not linked to the source tree: it runs with the clone gone
    shutil.rmtree(src)
    shared = tmp_path / "shared"
    shared.mkdir()
    conf = tmp_path / "omha.toml"
    conf.write_text(f'node = "n1"\n[sharedfs]\npath = "{shared}"\n[http]\nlisten = "127.0.0.1:9677"\n')
    check = subprocess.run([str(omha), "check", "-c", str(conf)], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stderr
    unit = (root / "etc" / "systemd" / "system" / "omha.service").read_text()
    assert f"ExecStart={prefix}/bin/omha daemon -c /etc/omha/omha.toml" in unit
    assert "WatchdogSec=" in unit and "Type=notify" in unit
    assert os.readlink(root / "usr" / "local" / "bin" / "omha") == str(omha)
    assert (prefix / "share" / "doc" / "omha" / "README.md").exists()
    assert (prefix / "share" / "doc" / "omha" / "examples" / "cluster" / "omha.toml").exists()
    assert (root / "etc" / "omha").is_dir()
    if generated:  # the tree generates completions and a man page: installed
        assert (root / "usr" / "local" / "share" / "man" / "man1" / "omha.1").resolve().is_file()
        assert (root / "usr" / "share" / "bash-completion" / "completions" / "omha").resolve().is_file()
