"""Failures are results, not hangs: wrong community, nobody listening, a stuck relay, unknown outlets.

Each failed result names the device, host and port, the action and outlet, and what was last seen, and never
the community or a v3 key. A call that has not returned well after the device's ``timeout`` is a hang and
fails the test (a deadline guard, not a timing measurement).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest
from omha_fence_powerstrip.device import ApcSnmpDevice
from omha_testing.snmpsim import STUCK_OUTLET, V3_AUTH_KEY, V3_USER, Simulator

from omha_core.fence_devices import FenceResult

SECRET = "wrong-S3cret-community"
FAST = {"timeout": 2.0, "snmp_timeout": 0.5, "retries": 1}


def returns_within(limit: float, call: Callable[[], FenceResult]) -> FenceResult:
    """``call()``'s result; fails the test if it has not returned after ``limit`` seconds."""
    box: list[FenceResult] = []
    thread = threading.Thread(target=lambda: box.append(call()), daemon=True)
    thread.start()
    thread.join(limit)
    assert box, f"the device did not return within {limit} s: it hangs"
    return box[0]


def guarded(dev: ApcSnmpDevice, action: str, targets: list[str]) -> FenceResult:
    limit = float(dev.options["timeout"]) + 5.0
    return returns_within(limit, lambda: dev.fence(action, targets))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wrong_community_fails_clearly_without_naming_it(simulator: Simulator) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options(SECRET, **FAST))
    result = guarded(dev, "off", ["1"])
    assert not result.ok
    where = f"pdu1 ({simulator.host}:{simulator.port}): off 1: no SNMP answer within 0.5 s x 2 tries"
    assert result.message.startswith(where), result.message
    assert "community" in result.message and SECRET not in result.message


def test_nothing_listening_fails_clearly(simulator: Simulator) -> None:
    port = free_udp_port()
    dev = ApcSnmpDevice("pdu1", {"host": "127.0.0.1", "port": port, "community": SECRET, **FAST})
    for action in ("off", "status"):
        result = guarded(dev, action, ["5"])
        assert not result.ok and f"127.0.0.1:{port}): {action} 5: no SNMP answer" in result.message
        assert SECRET not in result.message


def test_deadline_shorter_than_one_request_cuts_it_short(simulator: Simulator) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options(SECRET, timeout=0.5, snmp_timeout=2.0, retries=3))
    result = guarded(dev, "off", ["1"])
    assert not result.ok and "off 1: gave up after 0.5 s (the device's timeout)" in result.message


@pytest.mark.parametrize("community", ["apc-7902b", "apc-8641-rpdu"])
def test_outlet_that_never_turns_off_fails_with_last_state(simulator: Simulator, community: str) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options(community, **FAST))
    result = guarded(dev, "off", [str(STUCK_OUTLET)])
    assert not result.ok, result.message
    assert f"pdu1 ({simulator.host}:{simulator.port}): off {STUCK_OUTLET}" in result.message
    assert f"outlet {STUCK_OUTLET} " in result.message and result.message.endswith(" on"), result.message
    assert community not in result.message


def test_dual_supply_fails_when_one_outlet_stays_on(simulator: Simulator) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options("apc-8932", **FAST))
    assert dev.on(["1"]).ok
    result = guarded(dev, "off", ["1", str(STUCK_OUTLET)])
    assert not result.ok
    # the stuck one is named as still on; the other is not blamed
    assert f"outlet {STUCK_OUTLET} 'IBM Server {STUCK_OUTLET} PS1' on" in result.message
    assert "outlet 1 " not in result.message.split("confirmed within")[-1], result.message


def test_outlet_number_the_pdu_lacks(simulator: Simulator) -> None:
    for version in ("1", "2c"):
        dev = ApcSnmpDevice("pdu1", simulator.options("apc-7902b", version=version, **FAST))
        result = guarded(dev, "off", ["99"])
        assert not result.ok and "off 99: outlet 99 does not exist on this PDU (APC MasterSwitch" in result.message


def test_outlet_name_the_pdu_lacks_lists_its_names(simulator: Simulator) -> None:
    dev = ApcSnmpDevice("pdu1", simulator.options("apc-8641-rpdu", **FAST))
    result = guarded(dev, "off", ["web9"])
    assert not result.ok
    assert "no outlet named 'web9' (outlet names: 'CP-CM-SAN-01', 'DISK TRAY'," in result.message


def test_v3_wrong_key_fails_without_naming_keys(simulator: Simulator) -> None:
    options: dict[str, Any] = {
        "host": simulator.host,
        "port": simulator.port,
        "version": "3",
        "username": V3_USER,
        "auth_protocol": "sha",
        "auth_password": "not-the-key-" + V3_AUTH_KEY,
        "context_name": "apc-8932",
        **FAST,
    }
    result = guarded(ApcSnmpDevice("pdu1", options), "status", ["1"])
    assert not result.ok and "status 1: " in result.message
    assert V3_AUTH_KEY not in result.message
    too_short = guarded(ApcSnmpDevice("pdu1", {**options, "auth_password": "short"}), "status", ["1"])
    assert not too_short.ok and "auth_password must be at least 8 characters" in too_short.message
    assert "short" not in too_short.message
