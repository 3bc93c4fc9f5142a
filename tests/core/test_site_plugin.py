"""Installing plugins for real: a clean virtualenv with the core and only the plugins a user picks.

This is what a user does (``pip install omha-core omha-fence-x10``) and what catches a plugin that imports
something it does not declare, or a core that loads plugins it should not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        venv.create(path, with_pip=True)
        self.bin = path / "bin"

    def pip(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / "python"), "-m", "pip", "install", "-q", "--no-build-isolation", *args],
            check=True,
            capture_output=True,
            timeout=600,
        )

    def omha(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMHA_", "PYTHONPATH", "VIRTUAL_ENV"))}
        return subprocess.run([str(self.bin / "omha"), *args], capture_output=True, text=True, env=env, check=check)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    v = Venv(tmp_path_factory.mktemp("venv") / "env")
    v.pip("setuptools>=68")  # the build backend the distributions declare (the venv's bundled one is older)
    v.pip(str(ROOT))
    yield v


def plugin_names(v: Venv) -> list[str]:
    out = v.omha("plugins", "--json", check=True)
    return sorted(p["name"] for p in json.loads(out.stdout) if not p["builtin"])


def test_core_alone_then_core_plus_fence_x10(clean_venv: Venv) -> None:
    assert plugin_names(clean_venv) == []
    clean_venv.pip(str(ROOT / "plugins" / "fence_x10"))
    assert plugin_names(clean_venv) == ["fence_x10"]
    infos = {p["name"]: p for p in json.loads(clean_venv.omha("plugins", "--json").stdout)}
    assert infos["fence_x10"]["distribution"] == "omha-fence-x10" and infos["fence_x10"]["error"] is None


def test_site_fence_plugin_installs_and_fences(clean_venv: Venv, tmp_path: Path) -> None:
    cfg = tmp_path / "omha.toml"
    cfg.write_text(
        f'node = "n1"\n[sharedfs]\npath = "{tmp_path}"\n'
        f'[[fencing.devices]]\nname = "killer"\nkind = "pid_kill"\npid_dir = "{tmp_path}"\n'
        'nodes = { n2 = "n2" }\n'
    )
    before = clean_venv.omha("-c", str(cfg), "check")
    assert before.returncode == 1 and "kind 'pid_kill' is not installed" in before.stderr

    clean_venv.pip(str(ROOT / "examples" / "site_fence_plugin"))
    infos = {p["name"]: p for p in json.loads(clean_venv.omha("plugins", "--json").stdout)}
    assert infos["site_fence"]["hooks"] == ["omha_fence_devices"]
    assert clean_venv.omha("-c", str(cfg), "check").returncode == 0

    victim = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (tmp_path / "n2.pid").write_text(str(victim.pid))
        status = clean_venv.omha("-c", str(cfg), "fence", "n2", "--action", "status")
        assert status.returncode == 0 and "state on" in status.stdout
        off = clean_venv.omha("-c", str(cfg), "fence", "n2", "--action", "off")
        assert off.returncode == 0, off.stderr
        assert off.stdout.startswith("n2: off done by killer, state off; verified. "), off.stdout
        deadline = time.monotonic() + 10
        while victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert victim.returncode == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_check_fails_cleanly_without_the_plugin_named_in_config(clean_venv: Venv, tmp_path: Path) -> None:
    cfg = tmp_path / "omha.toml"
    cfg.write_text('node = "n1"\n[cluster]\nstore = "etcd"\n')
    out = clean_venv.omha("-c", str(cfg), "status")
    assert out.returncode == 1
    assert f"{cfg}: [cluster] store: 'etcd' is not installed (installed: sharedfs)" in out.stderr
    assert sys.executable not in out.stderr  # no traceback


def test_the_guide_shows_the_whole_example_as_it_is() -> None:
    """docs/writing-plugins.md quotes the example plugin; the quote must not drift from the tested file."""
    code = (ROOT / "examples" / "site_fence_plugin" / "omha_site_fence.py").read_text()
    body = code[code.index('"""', 3) + 4 :].lstrip("\n")
    assert body in (ROOT / "docs" / "writing-plugins.md").read_text()
    lines = [ln for ln in body.splitlines() if ln.strip() and not ln.startswith(("import ", "from "))]
    assert len(lines) <= 30, f"the example grew to {len(lines)} lines of code"
