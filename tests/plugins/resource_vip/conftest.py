"""Fixtures for the ``@vip`` tests: a fresh network segment of namespaces per test, always removed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_commands, require_root
from tests.plugins.resource_vip.lan import Lan


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Two node namespaces and a client namespace on one bridge (see :mod:`tests.plugins.resource_vip.lan`)."""
    require_root()
    require_commands("ip", "ping", "setpriv")
    segment = Lan()
    try:
        yield segment.open()
    finally:
        segment.close()
