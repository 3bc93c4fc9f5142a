"""Fixtures for the power-strip tests: one snmpsim agent for the session, and the fence_apc_snmp client."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
from omha_testing.snmpsim import Simulator, start_simulator
from powerstrip_support import fence_apc_snmp_path


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """snmpsim on 127.0.0.1 serving the APC recordings (see :mod:`omha_testing.snmpsim`); stopped after the session.

    Outlet states persist between tests: every test first puts the outlets it uses into the state it needs.
    """
    pytest.importorskip("snmpsim", reason="needs snmpsim (pip install 'omha-fence-powerstrip[test]')")
    pytest.importorskip("snmpsim_data", reason="needs snmpsim-data (pip install 'omha-fence-powerstrip[test]')")
    sim = start_simulator(tmp_path_factory.mktemp("snmpsim"))
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def fence_apc_snmp(simulator: Simulator) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real fence_apc_snmp against the simulator: ``fence_apc_snmp(community, plug, action, *args)``."""
    agent = fence_apc_snmp_path()

    def run(community: str, plug: str, action: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [agent, "--ip", simulator.host, "--ipport", str(simulator.port), "--community", community]
        cmd += ["--plug", plug, "--action", action, *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)

    return run

