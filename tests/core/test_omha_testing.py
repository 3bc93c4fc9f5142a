"""omha_testing imports in any one plugin's venv: none of its modules imports a plugin at import time (a helper
that drives a plugin imports it when called), so that ``scripts/plugin-test`` can install it beside any plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import omha_testing

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_PACKAGES = sorted(f"omha_{p.name}" for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())
#: scripts run as ``python -m`` for one plugin's tests, not imported by them
SCRIPTS = {"claim_worker"}

BLOCKER = """
import importlib, importlib.abc, sys
blocked = tuple(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} imported at import time")
        return None
sys.meta_path.insert(0, Blocker())
for module in sys.argv[2].split(","):
    importlib.import_module(module)
"""


def test_every_module_imports_without_any_plugin() -> None:
    modules = sorted(
        f"omha_testing.{p.stem}"
        for p in Path(omha_testing.__file__).parent.glob("*.py")
        if p.stem not in SCRIPTS and p.stem != "__init__"
    )
    assert "omha_testing.mosix" in modules and "omha_testing.disks" in modules
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(PLUGIN_PACKAGES), ",".join(modules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
