"""``omha check --system``: missing programs of the configured plugins are reported, with their package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CONFIG = """
node = "n1"
[sharedfs]
path = "{shared}"
[[fencing.devices]]
name = "pdu"
kind = "fence_agent"
agent = "{agent}"
nodes = {{ n2 = "2" }}
"""


def check(tmp_path: Path, agent: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "shared").mkdir(exist_ok=True)
    conf = tmp_path / "omha.toml"
    conf.write_text(CONFIG.format(shared=tmp_path / "shared", agent=agent))
    cltab = tmp_path / "cltab"
    cltab.write_text("data:fs:run:wait:@mount /dev/vdb /srv/data type=ext4\n")
    env = {k: v for k, v in os.environ.items() if k != "OMHA_CONFIG"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "omha_core.cli", "check", "-c", str(conf), "--cltab", str(cltab), "--system"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_installed_tools_pass(tmp_path: Path) -> None:
    out = check(tmp_path, "fence_apc_snmp")  # plugins/fence_powerstrip/tests needs fence-agents: it is here
    assert out.returncode == 0, out.stderr
    assert "missing" not in out.stderr


def test_missing_fence_agent_and_agent_tools_are_named_with_their_package(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    out = check(tmp_path, "fence_no_such_agent", path=str(empty))
    assert out.returncode == 1
    lines = out.stderr.splitlines()
    assert any("'fence_no_such_agent' (Debian package fence-agents)" in ln and "'pdu'" in ln for ln in lines)
    # mount and umount live in /usr/bin, outside this PATH; blkid and fsck are found in the sbin directories
    assert any("'mount' (Debian package mount), needed by @mount (resource_mount)" in ln for ln in lines)
    assert not any("'blkid'" in ln for ln in lines)
