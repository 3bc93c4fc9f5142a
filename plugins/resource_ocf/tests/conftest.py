"""Running ``@ocf`` and ``@lsb`` exactly as the local init does (``python -m omha_core.agent``), and a scratch
OCF root holding a small test agent whose every action is steered by files in its state directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ocf_support import HEARTBEAT, PROBE_AGENT, Respawn
from omha_testing import require_commands


@pytest.fixture
def respawn() -> Iterator[Callable[..., Respawn]]:
    started: list[Respawn] = []

    def start(name: str, args: str, config: Path | None = None, wrap: tuple[str, ...] = ()) -> Respawn:
        r = Respawn(name, args, config, wrap)
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            if r.proc.poll() is None:
                r.proc.kill()
            r.proc.communicate()


@pytest.fixture
def ocf_root(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(OCF root holding ``test:Probe``, an omha.toml pointing ``[agents.ocf]`` at it, the agent's state dir)."""
    require_commands("sh", "sleep")
    root = tmp_path / "ocf"
    agent = root / "resource.d" / "test" / "Probe"
    agent.parent.mkdir(parents=True)
    agent.write_text(PROBE_AGENT)
    agent.chmod(0o755)
    config = tmp_path / "omha.toml"
    config.write_text(f'[sharedfs]\npath = "{tmp_path}"\n[agents.ocf]\nocf_root = "{root}"\n')
    state = tmp_path / "state"
    state.mkdir()
    return root, config, state


@pytest.fixture
def heartbeat_agents() -> None:
    """The ClusterLabs agents (Debian's resource-agents package) must be installed."""
    missing = [a for a in ("Dummy", "IPaddr2", "Filesystem") if not (HEARTBEAT / a).exists()]
    if missing:
        pytest.skip(f"needs resource-agents ({', '.join(missing)} missing; installed by 'make test' as root)")


# the network segment of namespaces of the @vip tests and the loop-device disk and mount-namespace nodes of the
# @mount tests, for IPaddr2 and Filesystem
from omha_testing.disks import disk, nodes  # noqa: E402, F401
from omha_testing.lan import lan  # noqa: E402, F401

