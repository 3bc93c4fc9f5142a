"""A lost node is fenced through an X10 CM11A (the emulator on a pseudo-terminal) before its group moves."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from omha_testing import require_commands
from omha_testing.cluster import Cluster, web_cltab
from omha_testing.cm11a_emulator import CM11AEmulator, Executed

pytestmark = pytest.mark.slow


def test_lost_node_switched_off_through_cm11a_before_takeover(tmp_path: Path) -> None:
    require_commands("flock")
    with CM11AEmulator() as emu:
        plugs = {
            "name": "plugs",
            "kind": "x10_cm11a",
            "port": emu.port,
            "repeat": 1,
            "nodes": {"n1": "A1", "n2": "A2", "n3": "A3"},
        }
        c = Cluster(
            tmp_path,
            3,
            cltab=web_cltab(tmp_path),
            hactl="web run\n",
            devices=[plugs],
            config={"fencing": {"action": "off"}},
        )
        try:
            c.start()
            victim = c.wait_running("web")
            address = {"n1": "A1", "n2": "A2", "n3": "A3"}[victim]
            assert emu.state(address) == "on"
            c.kill(victim, signal.SIGKILL)
            new = c.wait_running("web", 30, exclude=(victim,))
            # by the time the group runs elsewhere, the victim's module was switched off, once
            assert emu.state(address) == "off"
            assert emu.executed == [Executed("A", (int(address[1:]),), "off")]
            assert emu.errors == []
            record = c.fence_record(victim)
            assert record["ok"] and record["device"] == "plugs" and record["verified"] is False
            started = c.report()["groups"]["web"]["instances"][new]["since"]
            assert record["time"] < started  # fenced first, then taken over
            assert c.report()["nodes"][victim]["state"] == "fenced"
        finally:
            c.close()
