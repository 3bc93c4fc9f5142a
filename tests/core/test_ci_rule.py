"""The CI rule of omha-testing's pytest plugin (``omha_testing.plugin``, loaded through its ``pytest11`` entry
point wherever omha-testing is installed): under CI=true a skipped test fails the run (and only then)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_suite(tmp_path: Path, ci: str | None, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)


SKIPPING = "import pytest\n\ndef test_ok():\n    pass\n\ndef test_needs_x():\n    pytest.skip('needs x')\n"


def test_a_skip_fails_the_run_under_ci(tmp_path: Path) -> None:
    out = run_suite(tmp_path, "true", SKIPPING)
    assert out.returncode == 1, out.stdout
    assert "CI=true: 1 test(s) skipped; real-component tests must run in CI" in out.stdout


def test_a_skip_is_only_a_skip_elsewhere(tmp_path: Path) -> None:
    assert run_suite(tmp_path, None, SKIPPING).returncode == 0
    assert run_suite(tmp_path, "false", SKIPPING).returncode == 0


def test_ci_without_skips_passes(tmp_path: Path) -> None:
    assert run_suite(tmp_path, "true", "def test_ok():\n    pass\n").returncode == 0
