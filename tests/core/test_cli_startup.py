"""What ``omha status`` and ``omha plugins`` import (issue 19, CLI start-up): not the heavy modules they never use.

Start-up time is measured in ``bench/`` (``bench/bench_cli_startup.py``), never asserted; this pins the structural
property behind it, which a single top-level import can silently undo: building the parser (done on every command)
must not import the local init and asyncio, and loading every plugin (which both commands do, to validate the
configuration or list the plugins) must not import asyncio, the daemon or prometheus_client either; and
``omha status`` on a configuration without agent options or fence devices imports no agent's or device's
classes, and no store or membership backend but the one it names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: run one CLI command in a fresh interpreter, then print the names of every module it imported
PROBE = """
import contextlib, io, sys
from omha_core.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        rc = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        rc = exc.code
modules = sorted(sys.modules)  # before this probe imports json
import json
print(json.dumps({"rc": rc, "out": out.getvalue(), "modules": modules}))
"""

#: modules neither command needs; each costs several ms to tens of ms at start-up
HEAVY = (
    "asyncio",
    "prometheus_client",
    "pysnmp",
    "omha_core.daemon",
    "omha_core.node",
    "omha_core.init",
    "omha_core.standalone",
    "omha_core.metrics",
    "uuid",  # with platform
    "xml",  # the OCF plugin's meta-data parser
)


#: what ``omha status`` does without (issue 19): pluggy, the alert runner (and its logging), shutil
STATUS_UNUSED = ("pluggy", "omha_core.alerts", "omha_core.plugin_manager", "logging", "shutil")
#: what ``omha plugins`` does without, in addition
PLUGINS_UNUSED = ("pluggy", "inspect", "dataclasses", "json", "shutil", "tomllib")


def imported(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMHA_CONFIG", "OMHA_BLOCK_PLUGINS")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    )
    result = json.loads(proc.stdout)
    assert result["rc"] == 0, proc.stderr
    return result["out"], set(result["modules"])


@pytest.mark.parametrize("command", ["status", "plugins", "--help"])
def test_cli_command_does_not_import_heavy_modules(tmp_path: Path, command: str) -> None:
    config = tmp_path / "omha.toml"
    (tmp_path / "shared").mkdir()
    config.write_text(f'node = "n1"\n[sharedfs]\npath = "{tmp_path / "shared"}"\n')
    args = ["-c", str(config), "status"] if command == "status" else [command]
    out, modules = imported(tmp_path, *args)
    if command == "status":
        assert "cluster omha" in out  # the command did its work: read the store, printed the report
        # no [agents] section and no fence device: no agent or device plugin's classes are needed, only their
        # registration modules (the packages themselves, which import their classes inside the hooks)
        unused = sorted(m for m in modules if m.startswith(("omha_resource_", "omha_fence_")) and "." in m)
        # the store named in the config is sharedfs (built in): no other store or membership backend is built
        backends = (".store", ".membership")
        unused += sorted(m for m in modules if m.startswith("omha_membership_") and m.endswith(backends))
        # ...nor anything of theirs but their configuration schemas (which the whole file is validated against)
        schemas = (
            "omha_membership_etcd.options",
            "omha_membership_openmosix.schema",
            "omha_membership_openmosix.defaults",
        )
        unused += sorted(m for m in modules if m.startswith("omha_membership_") and "." in m and m not in schemas)
        assert unused == []
        assert {"omha_resource_vip", "omha_fence_powerstrip"} <= modules  # the plugins were loaded all the same
        # the builtins register through omha_core.builtin.hooks; only the store in use is imported
        builtins = sorted(m for m in modules if m.startswith("omha_core.builtin."))
        assert builtins == ["omha_core.builtin.hooks", "omha_core.builtin.sharedfs"]
        # the plugins are read without pluggy (plugins.get_registrations), the alert runner is not loaded with
        # the configuration's schema, and building the parser asks shutil for no terminal width
        assert sorted(m for m in modules if m.split(".")[0] in STATUS_UNUSED or m in STATUS_UNUSED) == []
    elif command == "plugins":
        assert "builtin.sharedfs" in out and "fence_powerstrip" in out  # every plugin listed, installed ones too
        assert "omha_fence_powerstrip" in modules  # ...and loaded (its load error would be listed)
        # the registration hooks name their classes (omha_core.lazy.Lazy): listing imports none of them, nor the
        # configuration's validation (voluptuous) that the plugins' schemas need
        plugin_parts = ("omha_resource_", "omha_fence_", "omha_membership_", "omha_core.builtin.")
        imported_parts = sorted(m for m in modules if m.startswith(plugin_parts) and "." in m.split("_", 2)[-1])
        assert imported_parts == ["omha_core.builtin.hooks"]
        assert sorted(m for m in modules if m.split(".")[0] == "voluptuous" or m == "omha_core.config") == []
        assert "logging" not in modules  # imported by plugins.py only when a plugin fails
        # listing reads the registration hooks without pluggy, and nothing on the way uses dataclasses
        # (which import inspect), json (text output) or shutil (argparse's terminal width, looked up only when
        # help is printed)
        assert sorted(m for m in modules if m.split(".")[0] in PLUGINS_UNUSED) == []
    else:
        assert "status" in out and "plugins" in out
    assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []
