"""``omha demo`` (what ``make demo`` runs) does what the README says, and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def cmdlines_mentioning(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd}")
    return found


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_demo_kills_or_freezes_fences_and_moves_the_web_group(how: str) -> None:
    cmd = [sys.executable, "-m", "omha_core.cli", "demo", *(["--freeze"] if how == "SIGSTOP" else [])]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    shared = re.search(r"sharing (\S+)", out.stdout)
    frozen = re.search(rf"(?:Freezing|Killing) (n\d)(?:'s daemon)? with {how}", out.stdout)
    assert shared and frozen, out.stdout
    victim = frozen.group(1)
    assert re.search(rf"{victim} fenced by n\d through device localkill \(off\)", out.stdout), out.stdout
    moved = re.search(rf"web moved from {victim} to (n\d)", out.stdout)
    assert moved and moved.group(1) != victim
    assert re.findall(r"-> hello from (n\d)", out.stdout) == [victim, moved.group(1)]  # served before and after
    assert "demo OK" in out.stdout
    tmp = str(Path(shared.group(1)).parent)
    assert not Path(tmp).exists()  # removed (no --keep)
    assert cmdlines_mentioning(tmp) == []  # no daemon, guard or server left running
