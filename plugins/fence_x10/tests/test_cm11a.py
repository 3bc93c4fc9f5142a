"""The ``x10_cm11a`` device against an emulated CM11A on a pseudo-terminal: the exact bytes omha sends, what the
interface executed, and every kind of trouble the interface can cause."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import serial
from omha_fence_x10.cm11a import CM11A
from omha_testing.cm11a_emulator import DEFAULT_UPLOAD, CM11AEmulator, Executed

from omha_core.fence_devices import FenceResult

Emu = Callable[..., CM11AEmulator]

A1_OFF = ["pc 04 66", "cm11a 6a", "pc 00", "cm11a 55", "pc 06 63", "cm11a 69", "pc 00", "cm11a 55"]
UPLOAD = f"cm11a {bytes([len(DEFAULT_UPLOAD)]).hex()} {DEFAULT_UPLOAD.hex(' ')}"


def device(port: str, **options: Any) -> CM11A:
    return CM11A("plugs", {"port": port, "repeat": 1, **options})


def test_off_sends_exactly_the_documented_bytes(cm11a: Emu) -> None:
    emu = cm11a()
    result = device(emu.port).off(["A1"])
    assert emu.transcript_hex() == A1_OFF
    assert emu.executed == [Executed("A", (1,), "off")]
    assert emu.state("A1") == "off"
    assert result.ok and not result.verified  # switched, but an appliance module cannot say so
    assert "A1" in result.message and "unverified" in result.message


def test_on_addresses_every_module_of_a_house_then_one_function(cm11a: Emu) -> None:
    emu = cm11a(initial={"A2": "off", "A3": "off"})
    result = device(emu.port).fence("on", ["A2", "A3"])
    assert result.ok
    assert emu.transcript_hex() == [
        "pc 04 6e", "cm11a 72", "pc 00", "cm11a 55",
        "pc 04 62", "cm11a 66", "pc 00", "cm11a 55",
        "pc 06 62", "cm11a 68", "pc 00", "cm11a 55",
    ]  # fmt: skip
    assert emu.executed == [Executed("A", (2, 3), "on")]
    assert (emu.state("A2"), emu.state("A3")) == ("on", "on")


def test_repeat_sends_every_command_that_many_times(cm11a: Emu) -> None:
    emu = cm11a()
    assert device(emu.port, repeat=3).off(["A1", "B2"]).ok
    assert emu.executed == [Executed("A", (1,), "off"), Executed("B", (2,), "off")] * 3


def test_reboot_is_off_pause_on(cm11a: Emu) -> None:
    emu = cm11a()
    result = device(emu.port, reboot_pause=0).fence("reboot", ["C3"])
    assert result.ok and not result.verified
    assert emu.executed == [Executed("C", (3,), "off"), Executed("C", (3,), "on")]
    assert emu.history("C3") == ["off", "on"] and emu.state("C3") == "on"


def test_emulator_in_its_own_process_reports_what_it_executed() -> None:
    command = [sys.executable, "-m", "omha_testing.cm11a_emulator", "--two-way", "A1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            port = proc.stdout.readline().strip()
            result = device(port, reply_timeout=5).fence("reboot", ["A1"])
            assert result.ok
            reported = [json.loads(proc.stdout.readline()) for _ in range(2)]
            assert reported == [{"house": "A", "units": [1], "function": f} for f in ("off", "on")]
        finally:
            proc.terminate()
        assert proc.wait(timeout=10) == 0  # and no protocol errors


def test_two_fence_actions_on_one_port_take_turns(cm11a: Emu) -> None:
    emu = cm11a()
    results: dict[str, FenceResult] = {}

    def fence(name: str, target: str) -> None:
        results[name] = CM11A(name, {"port": emu.port, "repeat": 2}).off([target])

    threads = [threading.Thread(target=fence, args=(f"dev{i}", t)) for i, t in enumerate(["A1", "B2"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert all(r.ok for r in results.values()), results
    # each action's commands stayed together: A's two, then B's (or the other way round), nothing interleaved
    assert emu.executed in (
        [Executed("A", (1,), "off")] * 2 + [Executed("B", (2,), "off")] * 2,
        [Executed("B", (2,), "off")] * 2 + [Executed("A", (1,), "off")] * 2,
    )


# ---------------------------------------------------------------------------------------------------------
# what the interface says on its own
# ---------------------------------------------------------------------------------------------------------


def test_poll_instead_of_a_checksum_is_served_then_the_command_restarts(cm11a: Emu) -> None:
    emu = cm11a()
    emu.interrupt(1, "poll")  # the OFF frame: the interface polls instead of answering its checksum
    result = device(emu.port).off(["A1"])
    assert result.ok
    assert emu.transcript_hex() == [*A1_OFF[:4], "pc 06 63", "cm11a 5a", "pc c3", UPLOAD, *A1_OFF]
    assert emu.executed == [Executed("A", (1,), "off")]
    assert "served a poll" in result.message


def test_poll_pending_before_omha_opens_the_port(cm11a: Emu) -> None:
    emu = cm11a(poll_interval=0.3)
    emu.queue_upload()  # polls already queued in the pty before the port is opened: they are stale
    assert emu.wait_for(lambda: emu.transcript_hex()[:1] == ["cm11a 5a"])
    result = device(emu.port).off(["A1"])
    assert result.ok
    assert emu.uploads_sent == 1
    assert emu.sent_by_pc().count(0xC3) == 1
    assert emu.executed == [Executed("A", (1,), "off")]
    assert emu.transcript_hex()[-8:] == A1_OFF  # the command went through whole after the poll


def test_clock_request_in_the_middle_of_a_command(cm11a: Emu) -> None:
    emu = cm11a()
    emu.interrupt(1, "power_fail")  # between the address and the function
    before = dt.datetime.now()
    result = device(emu.port).off(["A1"])
    assert result.ok
    assert len(emu.clock_sets) == 1
    clock = emu.clock_sets[0]
    block = "9b " + clock.raw.hex(" ")
    assert emu.transcript_hex() == [
        *A1_OFF[:4],
        "pc 06 63", "cm11a a5",
        f"pc {block}", f"cm11a {sum(clock.raw) & 0xFF:02x}", "pc 00", "cm11a 55",
        *A1_OFF,
    ]  # fmt: skip
    # the block carries the PC's local time (day of the year, weekday, hour and minute of this test)
    assert clock.year_day == before.timetuple().tm_yday - 1 or clock.year_day == before.timetuple().tm_yday
    assert clock.day_mask in (0x40 >> ((before.weekday() + 1) % 7), 0x40 >> ((before.weekday() + 2) % 7))
    hour, minute = clock.hour_minute
    assert (hour * 60 + minute - (before.hour * 60 + before.minute)) % 1440 in (0, 1)
    assert clock.flags == 0  # omha never purges the operator's timers
    assert emu.executed == [Executed("A", (1,), "off")]


def test_clock_request_instead_of_ready(cm11a: Emu) -> None:
    emu = cm11a()
    emu.interrupt(0, "power_fail", at="ready")  # the address went out, then the interface lost power
    assert device(emu.port).off(["A1"]).ok
    assert emu.transcript_hex()[:4] == ["pc 04 66", "cm11a 6a", "pc 00", "cm11a a5"]
    assert emu.transcript_hex()[-8:] == A1_OFF
    assert len(emu.clock_sets) == 1
    assert emu.executed == [Executed("A", (1,), "off")]


def test_corrupted_checksum_once_is_resent(cm11a: Emu) -> None:
    emu = cm11a()
    emu.corrupt_checksum(0)
    result = device(emu.port).off(["A1"])
    assert result.ok
    assert emu.transcript_hex() == ["pc 04 66", "cm11a 7a", *A1_OFF]
    assert emu.executed == [Executed("A", (1,), "off")]


def test_checksum_never_right_gives_up_with_a_clear_error(cm11a: Emu) -> None:
    emu = cm11a()
    emu.corrupt_checksum(0, 1, 2, 3, 4)
    result = device(emu.port).off(["A1"])
    assert not result.ok
    assert "wrong checksum" in result.message and "5 times" in result.message and "4800 baud" in result.message
    assert emu.sent_by_pc() == bytes.fromhex("04 66") * 5  # never acknowledged a wrong checksum
    assert emu.executed == []


def test_g1_checksum_0x5a_is_a_checksum_when_no_poll_is_pending(cm11a: Emu) -> None:
    emu = cm11a()
    assert device(emu.port).off(["G1"]).ok
    assert emu.transcript_hex() == [
        "pc 04 56", "cm11a 5a", "pc 00", "cm11a 55",
        "pc 06 53", "cm11a 59", "pc 00", "cm11a 55",
    ]  # fmt: skip
    assert emu.uploads_sent == 0


def test_g1_checksum_0x5a_that_was_really_a_poll(cm11a: Emu) -> None:
    emu = cm11a(poll_interval=0.3)
    emu.interrupt(0, "poll")  # 0x5A comes, but it is a poll: the 0x00 is ignored and the poll repeats
    result = device(emu.port).off(["G1"])
    assert result.ok
    assert emu.transcript_hex() == [
        "pc 04 56", "cm11a 5a", "pc 00", "cm11a 5a", "pc c3", UPLOAD,
        "pc 04 56", "cm11a 5a", "pc 00", "cm11a 55",
        "pc 06 53", "cm11a 59", "pc 00", "cm11a 55",
    ]  # fmt: skip
    assert emu.executed == [Executed("G", (1,), "off")]


def test_d5_checksum_0xa5_that_was_really_a_clock_request(cm11a: Emu) -> None:
    emu = cm11a(poll_interval=0.3)
    emu.interrupt(0, "power_fail")
    assert device(emu.port).off(["D5"]).ok
    script = emu.transcript_hex()
    assert script[:4] == ["pc 04 a1", "cm11a a5", "pc 00", "cm11a a5"]
    assert script[4].startswith("pc 9b ")
    assert script[-8:] == ["pc 04 a1", "cm11a a5", "pc 00", "cm11a 55", "pc 06 a3", "cm11a a9", "pc 00", "cm11a 55"]
    assert len(emu.clock_sets) == 1
    assert emu.executed == [Executed("D", (5,), "off")]


def test_interface_that_never_answers_times_out_clearly(cm11a: Emu) -> None:
    emu = cm11a(answering=False)
    result = device(emu.port, reply_timeout=0.3).off(["A1"])
    assert not result.ok
    assert "not answering" in result.message and emu.port in result.message and "0x6A" in result.message
    assert emu.sent_by_pc() == bytes.fromhex("04 66")


def test_the_action_timeout_bounds_a_slow_interface(cm11a: Emu) -> None:
    emu = cm11a(ready_delay=1.0)  # every frame takes a second on the power line
    result = device(emu.port, repeat=5, timeout=0.5).off(["A1"])
    assert not result.ok
    assert "0x55" in result.message


# ---------------------------------------------------------------------------------------------------------
# status and verification (two-way modules only)
# ---------------------------------------------------------------------------------------------------------


def test_status_of_a_two_way_module(cm11a: Emu) -> None:
    emu = cm11a(two_way={"A1"}, initial={"A1": "off"})
    result = device(emu.port).status(["A1"])
    assert result == FenceResult(ok=True, verified=True, state="off", message=result.message)
    assert emu.executed == [Executed("A", (1,), "status_request")]
    assert emu.uploads_sent == 1


def test_status_of_a_one_way_module_is_unknown(cm11a: Emu) -> None:
    emu = cm11a()
    result = device(emu.port, reply_timeout=0.3).status(["A2"])
    assert not result.ok and result.state is None
    assert "no status reply from A2" in result.message


def test_verify_reads_back_a_two_way_module(cm11a: Emu) -> None:
    emu = cm11a(two_way={"B7"})
    result = device(emu.port, verify=True).off(["B7"])
    assert result.ok and result.verified and result.state == "off"
    assert emu.executed == [Executed("B", (7,), "off"), Executed("B", (7,), "status_request")]


def test_verify_with_a_one_way_module_stays_unverified(cm11a: Emu) -> None:
    emu = cm11a()
    result = device(emu.port, verify=True, reply_timeout=0.3).off(["B7"])
    assert result.ok and not result.verified
    assert "no status reply" in result.message


# ---------------------------------------------------------------------------------------------------------
# clear errors
# ---------------------------------------------------------------------------------------------------------


def test_no_such_serial_port() -> None:
    result = device("/dev/ttyX10-missing").off(["A1"])
    assert not result.ok
    assert "no such serial port /dev/ttyX10-missing" in result.message


def test_not_a_serial_port(tmp_path: Any) -> None:
    plain = tmp_path / "not-a-tty"
    plain.write_text("")
    result = device(str(plain)).off(["A1"])
    assert not result.ok and "not a serial port" in result.message


def test_port_held_by_someone_else(cm11a: Emu) -> None:
    emu = cm11a()
    with serial.Serial(emu.port, exclusive=True):
        result = device(emu.port).off(["A1"])
    assert not result.ok and "busy" in result.message
    assert emu.executed == []


def test_permission_denied(cm11a: Emu) -> None:
    emu = cm11a()
    if os.geteuid() != 0:
        os.chmod(emu.port, 0)  # our own pty: even its owner may not open it now
    result = _in_child_as_nobody(lambda: device(emu.port).off(["A1"]))
    assert not result["ok"]
    assert f"permission denied opening serial port {emu.port}" in result["message"]
    assert "dialout" in result["message"]


@pytest.mark.parametrize(("target", "says"), [("Q1", "not one of A-P"), ("A17", "not in 1-16"), ("1", "like 'A1'")])
def test_bad_house_or_unit_is_refused_before_touching_the_port(cm11a: Emu, target: str, says: str) -> None:
    emu = cm11a()
    result = device(emu.port).off([target])
    assert not result.ok and says in result.message
    assert emu.transcript == []


def _in_child_as_nobody(action: Callable[[], FenceResult]) -> dict[str, Any]:
    """Run ``action`` in a forked child that (when we are root) first becomes ``nobody``; return its result.

    Everything the action imports is loaded before the fork, so the child needs no file it may not read.
    """
    import serial.serialposix  # noqa: F401  (pyserial is loaded lazily by the plugin; load it while privileged)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            res = action()
            os.write(write_end, json.dumps({"ok": res.ok, "message": res.message}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    assert data, "the unprivileged child reported nothing"
    answer: dict[str, Any] = json.loads(data)
    return answer
