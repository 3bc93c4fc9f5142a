"""The ``x10_cm17a`` device: the DTR/RTS line changes it makes on a pty, captured by an LD_PRELOAD shim built
with gcc, decoded into frames and compared with the issue's vectors and with bottlerocket's ``br`` (run for
real under the same shim) for every house code and unit, on and off."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omha_fence_x10.addresses import HOUSES, X10Address
from omha_fence_x10.cm17a import CM17A
from omha_fence_x10.cm17a_frames import frame
from omha_testing import require_commands
from omha_testing.linemon import decode_frames, read_log, shim_env

RUN_DEVICE = Path(__file__).with_name("run_device.py")
EVERY_ADDRESS = [f"{h}{u}" for h in HOUSES for u in range(1, 17)]
# the issue's vectors, recorded from bottlerocket's br
A3_ON = bytes.fromhex("d5 aa 60 08 ad")
B12_OFF = bytes.fromhex("d5 aa 74 38 ad")


def run_native(lib: Path, log: Path, port: str, action: str, targets: list[str], fast: bool, **options: Any) -> Any:
    """Run the plugin's CM17A device in a child process under the line monitor; return its result."""
    spec = {"kind": "x10_cm17a", "name": "rf", "options": {"port": port, **options}, "action": action}
    spec["targets"] = targets
    proc = subprocess.run(
        [sys.executable, str(RUN_DEVICE), json.dumps(spec)],
        env=shim_env(lib, log, fast),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def run_br(lib: Path, log: Path, port: str, args: list[str], fast: bool) -> None:
    """Run bottlerocket's br on ``port`` under the line monitor."""
    proc = subprocess.run(
        ["br", "--port", port, *args], env=shim_env(lib, log, fast), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def test_issue_vectors_with_real_timing(linemon: Path, pty_port: str, tmp_path: Path) -> None:
    on = run_native(linemon, tmp_path / "on.log", pty_port, "on", ["A3"], fast=False, repeat=1)
    off = run_native(linemon, tmp_path / "off.log", pty_port, "off", ["B12"], fast=False, repeat=1)
    assert decode_frames(read_log(tmp_path / "on.log")) == [A3_ON]
    assert decode_frames(read_log(tmp_path / "off.log")) == [B12_OFF]
    for result in (on, off):
        assert result["ok"] and not result["verified"]  # sent; a one-way transmitter cannot confirm
        assert "one-way" in result["message"]


def test_br_gives_the_issue_vectors_with_real_timing(linemon: Path, pty_port: str, tmp_path: Path) -> None:
    require_commands("br")
    run_br(linemon, tmp_path / "br.log", pty_port, ["A3", "ON", "B12", "OFF"], fast=False)
    assert decode_frames(read_log(tmp_path / "br.log")) == [A3_ON, B12_OFF]


def test_every_house_and_unit_on_and_off_matches_br(linemon: Path, pty_port: str, tmp_path: Path) -> None:
    require_commands("br")
    units = ",".join(str(u) for u in range(1, 17))
    br_args = [arg for h in HOUSES for arg in (f"{h}{units}", "ON", f"{h}{units}", "OFF")]
    run_br(linemon, tmp_path / "br.log", pty_port, br_args, fast=True)
    by_br = decode_frames(read_log(tmp_path / "br.log"))
    assert len(by_br) == 512
    # br sent, house by house, units 1-16 ON then units 1-16 OFF
    blocks = [by_br[i : i + 16] for i in range(0, 512, 16)]
    br_frames = {(h, on): blocks[2 * i + (0 if on else 1)] for i, h in enumerate(HOUSES) for on in (True, False)}

    for on, action in ((True, "on"), (False, "off")):
        log = tmp_path / f"native-{action}.log"
        result = run_native(linemon, log, pty_port, action, EVERY_ADDRESS, fast=True, repeat=1)
        assert result["ok"]
        native = decode_frames(read_log(log))
        assert native == [f for h in HOUSES for f in br_frames[(h, on)]], f"{action}: frames differ from br's"
        assert native == [frame(X10Address(h, u), on) for h in HOUSES for u in range(1, 17)]
    assert br_frames[("A", True)][2] == A3_ON and br_frames[("B", False)][11] == B12_OFF
    # and no two addresses / actions share a frame
    assert len(set(by_br)) == 512


def test_repeat_sends_each_frame_that_many_times(linemon: Path, pty_port: str, tmp_path: Path) -> None:
    result = run_native(linemon, tmp_path / "r.log", pty_port, "off", ["A3", "B12"], fast=True, repeat=3)
    assert result["ok"] and "3 times" in result["message"]
    assert decode_frames(read_log(tmp_path / "r.log")) == [frame(X10Address("A", 3), False), B12_OFF] * 3


def test_reboot_is_off_then_on(linemon: Path, pty_port: str, tmp_path: Path) -> None:
    result = run_native(linemon, tmp_path / "rb.log", pty_port, "reboot", ["A3"], fast=True, repeat=1)
    assert result["ok"] and not result["verified"]
    assert decode_frames(read_log(tmp_path / "rb.log")) == [frame(X10Address("A", 3), False), A3_ON]


def test_a_port_without_modem_lines_is_a_clear_error(pty_port: str) -> None:
    result = CM17A("rf", {"port": pty_port}).off(["A1"])  # a bare pty refuses the DTR/RTS ioctls
    assert not result.ok
    assert "DTR/RTS" in result.message and pty_port in result.message


def test_status_is_not_supported() -> None:
    result = CM17A("rf", {"port": "/dev/ttyS0"}).status(["A1"])
    assert not result.ok and result.state is None
    assert "one-way" in result.message


@pytest.mark.parametrize(
    ("port", "target", "says"),
    [("/dev/ttyX10-missing", "A1", "no such serial port /dev/ttyX10-missing"), ("/dev/ttyS0", "R2", "A-P")],
)
def test_clear_errors(port: str, target: str, says: str) -> None:
    result = CM17A("rf", {"port": port}).off([target])
    assert not result.ok and says in result.message
