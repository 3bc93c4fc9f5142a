"""The builtin fence device kinds and device levels, with real commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from omha_core.config import Config, validate_config
from omha_core.errors import ConfigError
from omha_core.fence_devices import FenceDevice, FenceResult, ProcessResult, run_process
from omha_core.fencing import Device, Outcome, build_devices, fence_levels, fence_node, scrub, secret_values
from omha_core.localcluster import kill_strays
from omha_core.plugins import get_plugin_manager


def config(tmp_path: Path, *devices: dict[str, Any]) -> Config:
    return validate_config({"node": "n1", "fencing": {"devices": list(devices)}}, str(tmp_path / "omha.toml"))


def recorder(tmp_path: Path, exit_code: int = 0, state: str = "off") -> str:
    """A command that logs its environment and answers like a power switch."""
    log = tmp_path / "calls"
    return (
        f'echo "$OMHA_NODE $OMHA_ACTION $OMHA_TARGET" >> {log}; '
        f'if [ "$OMHA_ACTION" = status ]; then echo {state}; fi; exit {exit_code}'
    )


def calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_command_device_gets_node_action_and_every_target(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, {"name": "sw", "kind": "command", "command": recorder(tmp_path), "nodes": {"n3": ["3", "4"]}}
    )
    devices = build_devices(cfg, get_plugin_manager())
    result, device, errors = fence_node(devices, "n3", "off", [])
    assert result is not None and result.ok and device == "sw" and errors == []
    assert calls(tmp_path) == ["n3 off 3", "n3 off 4"]
    assert not result.verified  # verify not asked for


def test_command_device_verifies_off_with_status(tmp_path: Path) -> None:
    good = {"name": "sw", "kind": "command", "command": recorder(tmp_path), "verify": True, "nodes": {"n2": "7"}}
    devices = build_devices(config(tmp_path, good), get_plugin_manager())
    result, _, _ = fence_node(devices, "n2", "off", [])
    assert result is not None and result.verified
    assert calls(tmp_path) == ["n2 off 7", "n2 status 7"]
    # a switch that claims success but still reports "on" is a failure
    liar = dict(good, command=recorder(tmp_path, 0, "on"))
    devices = build_devices(config(tmp_path, liar), get_plugin_manager())
    result, _, errors = fence_node(devices, "n2", "off", [])
    assert result is None and "status says 'on'" in errors[0]


def test_levels_second_device_used_when_first_fails(tmp_path: Path) -> None:
    first = {"name": "broken", "kind": "command", "command": "echo no power >&2; exit 3", "nodes": {"n2": "1"}}
    second = {"name": "backup", "kind": "command", "command": recorder(tmp_path), "nodes": {"n2": "B"}}
    other = {"name": "other", "kind": "command", "command": recorder(tmp_path), "nodes": {"n9": "9"}}
    devices = build_devices(config(tmp_path, other, first, second), get_plugin_manager())
    result, device, errors = fence_node(devices, "n2", "reboot", [])
    assert result is not None and device == "backup"
    assert errors == ["broken (command): broken: reboot 1: exit 3: no power"]
    assert calls(tmp_path) == ["n2 reboot B"]  # the device that does not cover n2 was not called


def test_all_devices_fail(tmp_path: Path) -> None:
    dev = {"name": "d", "kind": "command", "command": "sleep 5", "timeout": 0.3, "nodes": {"n2": "1"}}
    devices = build_devices(config(tmp_path, dev), get_plugin_manager())
    result, device, errors = fence_node(devices, "n2", "off", [])
    assert result is None and device is None and "timed out after 0.3 s" in errors[0]


def test_device_options_validated_against_kind_schema(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[fencing.devices\] sw: .*command: required key is missing"):
        config(tmp_path, {"name": "sw", "kind": "command", "nodes": {"n1": "1"}})
    with pytest.raises(ConfigError, match=r"\[fencing.devices\] sw: .*colour: unknown key"):
        config(tmp_path, {"name": "sw", "kind": "command", "command": "true", "colour": "red", "nodes": {"n1": "1"}})


def test_secrets_scrubbed_from_device_messages(tmp_path: Path) -> None:
    dev = {
        "name": "pdu",
        "kind": "fence_agent",
        "agent": "no_such_fence_agent_xyz",
        "password": "hunter2-secret",
        "nodes": {"n2": "1"},
    }
    cfg = config(tmp_path, dev)
    assert secret_values(cfg) == ["hunter2-secret"]
    assert scrub("login failed for hunter2-secret", ["hunter2-secret"]) == "login failed for ***"
    pw_file = tmp_path / "pw"
    pw_file.write_text("from-a-file\n")
    filed = dict(dev, name="pdu2", password_file=str(pw_file))
    del filed["password"]
    assert secret_values(config(tmp_path, dev, filed)) == ["hunter2-secret", "from-a-file"]
    devices = build_devices(cfg, get_plugin_manager())
    result, _, errors = fence_node(devices, "n2", "off", secret_values(cfg))
    assert result is None and "not found" in errors[0] and "hunter2" not in errors[0]


class Held(FenceDevice):
    """A device whose ``off`` does not return until the test lets it (a PDU that hangs mid-command)."""

    def __init__(self, name: str, options: dict[str, Any], log: list[str], release: threading.Event) -> None:
        super().__init__(name, options)
        self.log, self.release = log, release

    def off(self, targets: list[str]) -> FenceResult:
        self.log.append(f"{self.name} off starts")
        self.release.wait(60)
        self.log.append(f"{self.name} off ends")
        return FenceResult(ok=False, message="relay did not answer")

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, message="on (never called: off fails)")


class Quick(FenceDevice):
    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__(name, {})
        self.log = log

    def off(self, targets: list[str]) -> FenceResult:
        self.log.append(f"{self.name} off")
        return FenceResult(ok=True, verified=True, message=f"{self.name}: off")

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=True, message="on")


def test_a_call_past_its_maximum_is_failed_and_still_running_and_nothing_starts_beside_it() -> None:
    log: list[str] = []
    release = threading.Event()
    held = Device("stuck", "held", "test", Held("stuck", {"timeout": 0.1}, log, release), {"n2": ["1"]}, None)
    backup = Device("backup", "quick", "test", Quick("backup", log), {"n2": ["B"]}, None)
    notes: list[str] = []
    box: list[Outcome] = []
    worker = threading.Thread(target=lambda: box.append(fence_levels([held, backup], "n2", "off", [], notes.append)))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not notes and time.monotonic() < deadline:
            time.sleep(0.02)
        # past its 0.1 s (+ margin): reported as failed and still running...
        assert notes and "stuck: off of n2 still running after 0.1 s" in notes[0] and "counted as failed" in notes[0]
        # ...and the next level has not started beside it
        assert log == ["stuck off starts"] and worker.is_alive()
    finally:
        release.set()
        worker.join(20)
    assert log == ["stuck off starts", "stuck off ends", "backup off"]  # the next level only once it ended
    outcome = box[0]
    assert outcome.device is backup and outcome.action == "off"
    assert outcome.errors == ["stuck (held): stuck: overran its 0.1 s limit, then: relay did not answer"]


def test_daemon_shutdown_stops_waiting_for_a_hung_call() -> None:
    log: list[str] = []
    release, stop = threading.Event(), threading.Event()
    held = Device("stuck", "held", "test", Held("stuck", {"timeout": 30}, log, release), {"n2": ["1"]}, None)
    backup = Device("backup", "quick", "test", Quick("backup", log), {"n2": ["B"]}, None)
    box: list[Outcome] = []
    worker = threading.Thread(target=lambda: box.append(fence_levels([held, backup], "n2", "off", [], None, stop)))
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not log and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()  # Fencer.close(): well within the call's 30 s
        worker.join(20)
        assert not worker.is_alive()
        assert box[0].errors == ["stuck (held): stuck: off still running when fencing was stopped"]
        assert log == ["stuck off starts"]  # and no other level was started
    finally:
        release.set()


def test_each_kind_declares_how_long_a_call_may_take(tmp_path: Path) -> None:
    cmd = {
        "name": "sw",
        "kind": "command",
        "command": "true",
        "timeout": 3,
        "reboot_pause": 2,
        "nodes": {"n3": ["3", "4"]},
    }
    agent = {"name": "pdu", "kind": "fence_agent", "agent": "fence_dummy", "timeout": 5, "nodes": {"n3": ["3", "4"]}}
    sw, pdu = (d.device for d in build_devices(config(tmp_path, cmd, agent), get_plugin_manager()))
    assert sw.max_duration("off", ["3", "4"]) == 6  # one run per target
    assert sw.max_duration("reboot", ["3"]) == 8  # the script's own reboot: off, pause, on
    assert sw.max_duration("reboot", ["3", "4"]) == 6 + 2 + 6  # power cycle of both supplies
    verify = build_devices(config(tmp_path, dict(cmd, verify=True)), get_plugin_manager())[0].device
    assert verify.max_duration("off", ["3", "4"]) == 12  # plus a status run per target
    assert pdu.max_duration("status", ["3", "4"]) == 10 and pdu.max_duration("reboot", ["3"]) == 11
    assert pdu.max_duration("reboot", ["3", "4"]) == 10 + 1 + 10
    assert Quick("q", []).max_duration("reboot", ["1", "2"]) == 20 + 1 + 20  # the base: the device's timeout


def test_a_multi_target_call_longer_than_one_timeout_is_not_cut_short(tmp_path: Path) -> None:
    """Four supplies at 0.6 s each with a 1 s timeout: 2.4 s in all is within what the device declared (4 s),
    although longer than one timeout and its margin (2 s)."""
    slow = f"sleep 0.6; {recorder(tmp_path)}"
    dev = {"name": "sw", "kind": "command", "command": slow, "timeout": 1.0, "nodes": {"n3": ["1", "2", "3", "4"]}}
    devices = build_devices(config(tmp_path, dev), get_plugin_manager())
    notes: list[str] = []
    outcome = fence_levels(devices, "n3", "off", [], notes.append)
    assert outcome.result is not None and notes == [], (outcome, notes)
    assert calls(tmp_path) == ["n3 off 1", "n3 off 2", "n3 off 3", "n3 off 4"]


def test_a_command_past_its_timeout_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    command = f"sleep 60 & echo $! > {pid_file}; wait"
    dev = {"name": "sw", "kind": "command", "command": command, "timeout": 0.5, "nodes": {"n2": "1"}}
    result, _, errors = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n2", "off", [])
    assert result is None and "timed out after 0.5 s (killed)" in errors[0]
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not running(child), "the command's background child kept running after the timeout"


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- several targets for one node (dual power supplies) -----------------------------------------------------


def test_dual_supply_reboot_is_all_off_then_all_on(tmp_path: Path) -> None:
    dev = {
        "name": "sw",
        "kind": "command",
        "command": recorder(tmp_path),
        "reboot_pause": 0,
        "nodes": {"n3": ["3", "4"]},
    }
    result, _, _ = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n3", "reboot", [])
    assert result is not None and result.ok
    # never "reboot 3, reboot 4": the node would keep power from the other supply the whole time
    assert calls(tmp_path) == ["n3 off 3", "n3 off 4", "n3 on 3", "n3 on 4"]


def test_dual_supply_reboot_with_verify_reads_both_back_before_power_on(tmp_path: Path) -> None:
    dev = {
        "name": "sw",
        "kind": "command",
        "command": recorder(tmp_path),
        "verify": True,
        "reboot_pause": 0,
        "nodes": {"n3": ["3", "4"]},
    }
    result, _, _ = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n3", "reboot", [])
    assert result is not None and result.verified
    assert calls(tmp_path) == ["n3 off 3", "n3 off 4", "n3 status 3", "n3 status 4", "n3 on 3", "n3 on 4"]


def test_dual_supply_reboot_stops_when_one_supply_does_not_go_off(tmp_path: Path) -> None:
    stuck = f'[ "$OMHA_ACTION $OMHA_TARGET" != "off 4" ] || {{ echo "$OMHA_NODE off 4" >> {tmp_path}/calls; '
    command = stuck + f"echo stuck >&2; exit 1; }}; {recorder(tmp_path)}"
    dev = {"name": "sw", "kind": "command", "command": command, "reboot_pause": 0, "nodes": {"n3": ["3", "4"]}}
    result, _, errors = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n3", "reboot", [])
    assert result is None and errors == ["sw (command): sw: off 4: exit 1: stuck"]
    assert calls(tmp_path) == ["n3 off 3", "n3 off 4"]  # no power-on: the node was never fenced


def test_single_supply_reboot_uses_the_commands_own_reboot(tmp_path: Path) -> None:
    dev = {"name": "sw", "kind": "command", "command": recorder(tmp_path), "nodes": {"n2": "2"}}
    result, _, _ = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n2", "reboot", [])
    assert result is not None and calls(tmp_path) == ["n2 reboot 2"]


def test_the_base_class_power_cycles_several_targets_whatever_the_kind_does() -> None:
    seen: list[str] = []

    class NativeReboot(FenceDevice):
        def off(self, targets: list[str]) -> FenceResult:
            seen.append(f"off {','.join(targets)}")
            return FenceResult(ok=True, verified=True)

        def on(self, targets: list[str]) -> FenceResult:
            seen.append(f"on {','.join(targets)}")
            return FenceResult(ok=True)

        def reboot(self, targets: list[str]) -> FenceResult:
            seen.append(f"reboot {','.join(targets)}")
            return FenceResult(ok=True)

    dev = NativeReboot("pdu", {"reboot_pause": 0})
    assert dev.fence("reboot", ["1"]).ok and seen == ["reboot 1"]
    seen.clear()
    result = dev.fence("reboot", ["1", "2"])
    assert result.ok and result.verified and seen == ["off 1,2", "on 1,2"]


# -- verification of the `command` kind: a status_command reads `off` back by default ------------------------


def status_recorder(tmp_path: Path, answer: str, exit_code: int = 0) -> str:
    """A status_command that logs its call and answers ``answer``."""
    return f'echo "$OMHA_NODE status-command $OMHA_TARGET" >> {tmp_path}/calls; echo {answer}; exit {exit_code}'


def off_with(tmp_path: Path, **options: Any) -> FenceResult | None:
    dev = {"name": "sw", "kind": "command", "command": recorder(tmp_path), "nodes": {"n2": "7"}, **options}
    result, _, _ = fence_node(build_devices(config(tmp_path, dev), get_plugin_manager()), "n2", "off", [])
    return result


def test_a_status_command_makes_off_verified_by_default(tmp_path: Path) -> None:
    result = off_with(tmp_path, status_command=status_recorder(tmp_path, "off"))
    assert result is not None and result.ok and result.verified and result.state == "off"
    assert calls(tmp_path) == ["n2 off 7", "n2 status-command 7"]  # the status query ran, not `command`


def test_a_status_command_that_still_reads_on_fails_the_off(tmp_path: Path) -> None:
    result = off_with(tmp_path, status_command=status_recorder(tmp_path, "on"))
    assert result is None


def test_an_answer_neither_on_nor_off_leaves_off_done_but_unverified_and_says_why(tmp_path: Path) -> None:
    result = off_with(tmp_path, status_command=status_recorder(tmp_path, "dunno"))
    assert result is not None and result.ok and not result.verified
    assert "the status query gave no on/off answer" in result.unverified_reason
    assert "dunno" in result.unverified_reason
    (tmp_path / "calls").unlink()
    broken = off_with(tmp_path, status_command=status_recorder(tmp_path, "", exit_code=3))
    assert broken is not None and broken.ok and not broken.verified and "exit 3" in broken.unverified_reason


def test_without_a_status_command_off_is_not_read_back_and_the_reason_says_so(tmp_path: Path) -> None:
    result = off_with(tmp_path)
    assert result is not None and result.ok and not result.verified
    assert result.unverified_reason == "no status_command configured"
    assert calls(tmp_path) == ["n2 off 7"]  # `command` is not run a second time as if it knew `status`
    (tmp_path / "calls").unlink()
    off = off_with(tmp_path, status_command=status_recorder(tmp_path, "off"), verify=False)
    assert off is not None and not off.verified and off.unverified_reason == "verify = false"
    assert calls(tmp_path) == ["n2 off 7"]


def test_omha_fence_says_why_a_result_is_not_verified(tmp_path: Path, omha_env: dict[str, str]) -> None:
    base = 'node = "n1"\n[[fencing.devices]]\nname = "sw"\nkind = "command"\nnodes = { n2 = "7" }\n'
    (tmp_path / "omha.toml").write_text(base + f"command = '{recorder(tmp_path)}'\n")
    out = omha(tmp_path, omha_env, "fence", "n2", "--action", "off")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("n2: off done by sw; not verified (no status_command configured). ")
    (tmp_path / "omha.toml").write_text(
        base + f"command = '{recorder(tmp_path)}'\nstatus_command = '{status_recorder(tmp_path, 'off')}'\n"
    )
    out = omha(tmp_path, omha_env, "fence", "n2", "--action", "off")
    assert out.stdout.startswith("n2: off done by sw, state off; verified. "), out.stdout + out.stderr


def omha(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "omha_core.cli", args[0], "-c", str(tmp_path / "omha.toml"), *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


# -- a device's own action overrides the daemon's automatic action, never an operator's ------------------------


def test_a_devices_own_action_replaces_only_the_automatic_one(tmp_path: Path) -> None:
    dev = {"name": "sw", "kind": "command", "command": recorder(tmp_path), "action": "reboot", "nodes": {"n2": "2"}}
    devices = build_devices(config(tmp_path, dev), get_plugin_manager())
    automatic = fence_levels(devices, "n2", "off", [])
    assert automatic.action == "reboot" and calls(tmp_path) == ["n2 reboot 2"]
    explicit = fence_levels(devices, "n2", "off", [], explicit=True)
    assert explicit.action == "off" and calls(tmp_path) == ["n2 reboot 2", "n2 off 2"]


def test_omha_fence_off_is_not_turned_into_the_devices_reboot(tmp_path: Path, omha_env: dict[str, str]) -> None:
    (tmp_path / "omha.toml").write_text(
        f'node = "n1"\n[[fencing.devices]]\nname = "sw"\nkind = "command"\naction = "reboot"\n'
        f"command = '{recorder(tmp_path)}'\nnodes = {{ n2 = \"2\" }}\n"
    )
    out = omha(tmp_path, omha_env, "fence", "n2", "--action", "off")
    assert out.returncode == 0, out.stderr
    assert calls(tmp_path) == ["n2 off 2"]
    assert out.stdout.startswith("n2: off done by sw;")


# -- a fence command never outlives the process that started it ------------------------------------------------


def test_a_fence_command_dies_with_the_process_that_runs_it(tmp_path: Path) -> None:
    """The caller (a daemon, its fence call in a worker thread) is SIGKILLed mid-call: the guard kills the
    command's whole process group, its background child included."""
    marker = f"omha-fence-marker-{os.getpid()}-{time.monotonic_ns()}"
    pid_file = tmp_path / "child.pid"
    command = f": {marker}; sleep 300 & echo $! > {pid_file}; wait"
    caller = (
        "import threading, time\n"
        "from omha_core.fence_devices import run_process\n"
        f"threading.Thread(target=run_process, args=(['/bin/sh', '-c', {command!r}], 600)).start()\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", caller])
    try:
        deadline = time.monotonic() + 20
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        child = int(pid_file.read_text())
        assert running(child) and marked(marker)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while (running(child) or marked(marker)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not running(child), "the fence command's child outlived its caller"
        assert marked(marker) == [], "the fence command outlived its caller"
    finally:
        proc.kill()
        proc.wait(10)
        kill_strays(marker)
        if pid_file.exists() and pid_file.read_text().strip() and running(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def marked(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and running(int(entry)):
            found.append(int(entry))
    return found


def test_the_guard_passes_on_exit_status_signal_input_and_output() -> None:
    assert run_process(["/bin/sh", "-c", "cat; echo err >&2; exit 3"], 10, input="in\n") == ProcessResult(
        3, "in\n", "err\n"
    )
    assert run_process(["/bin/sh", "-c", "kill -TERM $$"], 10).returncode == -signal.SIGTERM
    missing = run_process(["/no/such/fence-agent"], 10)
    assert missing.returncode == 127 and "/no/such/fence-agent: No such file or directory" in missing.stderr
    # SIGPIPE is back to its default in the command (Python ignores it, and the command would inherit that)
    assert run_process(["/bin/sh", "-c", "yes | head -1 >/dev/null; echo done"], 10).stdout == "done\n"
