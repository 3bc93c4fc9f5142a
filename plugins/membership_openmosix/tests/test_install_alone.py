"""The plugin installed alone beside omha-core in a clean virtualenv: listed, configurable, usable from the CLI.

This catches an import the distribution does not declare and a core that cannot find the plugin's backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

from omha_testing.mosix import FakeMosix

ROOT = Path(__file__).resolve().parents[3]


def run(cmd: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMHA_", "PYTHONPATH", "VIRTUAL_ENV"))}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=check)


def test_installs_alone_and_drives_the_cli(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py, omha = str(env_dir / "bin" / "python"), str(env_dir / "bin" / "omha")
    pip = [py, "-m", "pip", "install", "-q", "--no-build-isolation"]
    for target in ("setuptools>=68", str(ROOT), str(ROOT / "plugins" / "membership_openmosix")):
        done = run([*pip, target])
        assert done.returncode == 0, done.stderr

    plugins = json.loads(run([omha, "plugins", "--json"], check=True).stdout)
    external = {p["name"]: p for p in plugins if not p["builtin"]}
    assert list(external) == ["membership_openmosix"]
    assert external["membership_openmosix"]["error"] is None

    mosix = FakeMosix(tmp_path / "tree")
    mosix.put_copy(1, "hactl", "web start\n")
    cfg = tmp_path / "omha.toml"
    cfg.write_text(mosix.toml(2, {"openmosix": {"whois": "echo This is MOSIX #2"}}))
    check = run([omha, "-c", str(cfg), "check"])
    assert check.returncode == 0, check.stderr
    shown = run([omha, "-c", str(cfg), "show", "hactl"])
    assert shown.returncode == 0, shown.stderr
    assert "web start" in shown.stdout

    cfg.write_text(mosix.toml(2, {"openmosix": {"timeout": -5}}))
    bad = run([omha, "-c", str(cfg), "check"])
    assert bad.returncode == 1
    assert "[openmosix] timeout: expected a positive number of seconds, got -5" in bad.stderr
