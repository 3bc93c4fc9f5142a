"""The pytest plugin of omha's tests (entry point ``pytest11``), loaded wherever :mod:`omha_testing` is installed:
the core's test run and each plugin's run in its own virtualenv (``scripts/plugin-test``) get the same rules.

The CI rule: under ``CI=true`` a skipped test fails the run. Real-component tests skip with a reason on a
developer's laptop (not root, a system package missing), but CI runs as root with everything installed by
``make test``, so there a skip means a test silently did not run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from omha_testing import IN_CI

MARKERS = (
    "root: needs root (namespaces, mounts, loop devices)",
    "slow: multi-node or long-running",
)


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)


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
