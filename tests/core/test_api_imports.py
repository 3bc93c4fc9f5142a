"""The Python API (omha_core.api) does not import the CLI (issue 15): a program that drives a cluster through
``HA`` should not load argparse commands, and the CLI may change without the API noticing.

Checked in a fresh interpreter, so that modules other tests imported do not count: importing the API, and
using it (``HA(...)``, ``tell``, ``status``, whose imports are deferred to the call).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from omha_core import HA
import omha_core.api
after_import = sorted(sys.modules)
if len(sys.argv) > 1:
    ha = HA(sys.argv[1])
    ha.tell("web", "run")
    assert ha.status()["cluster"], "no report"
print(json.dumps({"import": after_import, "use": sorted(sys.modules)}))
"""


def modules(tmp_path: Path, *args: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMHA_CONFIG", "OMHA_BLOCK_PLUGINS")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


def cli_modules(names: list[str]) -> list[str]:
    return [
        m for m in names if m == "omha_core.cli" or m.startswith("omha_core.cli_") or m.startswith("omha_core.cli.")
    ]


def test_importing_the_api_imports_no_cli_module(tmp_path: Path) -> None:
    found = modules(tmp_path)
    assert "omha_core.api" in found["import"]
    assert cli_modules(found["import"]) == []


def test_using_the_api_imports_no_cli_module(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    config = tmp_path / "omha.toml"
    config.write_text(f'node = "n1"\n[sharedfs]\npath = "{tmp_path / "shared"}"\n')
    found = modules(tmp_path, str(config))
    assert "omha_core.control" in found["use"] and "omha_core.report" in found["use"]  # the calls did run
    assert cli_modules(found["use"]) == []
