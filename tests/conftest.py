"""Shared test fixtures and the CI rule: under CI=true a skipped test fails the run.

Real-component tests skip with a reason on a developer's laptop (not root, a system package missing), but CI
runs as root with everything installed by ``make test``, so there a skip means a test silently did not run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_root() -> None:
    """Skip the calling test unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, mounts, loop devices)")


def require_commands(*names: str) -> None:
    """Skip the calling test unless every command in ``names`` is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by 'make test' as root)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; real-component tests must run in CI")
        session.exitstatus = 1


@pytest.fixture
def omha_env(tmp_path: str) -> Iterator[dict[str, str]]:
    """An environment for omha subprocesses that sees only this test's temp dir."""
    env = dict(os.environ)
    env.pop("OMHA_CONFIG", None)
    yield env
