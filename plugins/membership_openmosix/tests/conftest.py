"""Fixtures of the openmosix plugin tests: a fake openMosix tree per test (see omha_testing.mosix)."""

from __future__ import annotations

from pathlib import Path

import pytest
from omha_testing.mosix import FakeMosix


@pytest.fixture
def mosix(tmp_path: Path) -> FakeMosix:
    """Three up nodes, 1 2 3, with empty MFS directories."""
    return FakeMosix(tmp_path / "cluster")
