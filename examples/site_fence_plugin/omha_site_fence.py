"""A site fencing plugin in about 20 lines of code: "power off" a node by SIGKILLing the process group in its
pid file. omha does the rest: it validates ``schema``, tries devices in order, power-cycles a reboot through
off and on, and turns an exception into a failed attempt whose reason is the exception's message.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

import voluptuous as vol

from omha_core import hookimpl
from omha_core.fence_devices import FenceDevice, FenceResult


class PidKill(FenceDevice):
    schema = {vol.Required("pid_dir"): str}  # the device's own options, validated by omha
    can_verify = True

    def _pids(self, targets: list[str]) -> list[int]:
        return [int(Path(self.options["pid_dir"], f"{t}.pid").read_text()) for t in targets]

    def off(self, targets: list[str]) -> FenceResult:
        for pid in self._pids(targets):
            with contextlib.suppress(ProcessLookupError):  # already gone is off
                os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5  # verified: ok only once every target is really gone
        while (state := self.status(targets).state) != "off" and time.monotonic() < deadline:
            time.sleep(0.05)
        return FenceResult(ok=state == "off", verified=True, state=state, message=f"{targets}: {state}")

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=False, message="pid_kill cannot power a node on")

    def status(self, targets: list[str]) -> FenceResult:
        alive = [pid for pid in self._pids(targets) if _running(pid)]
        return FenceResult(ok=True, verified=True, state="on" if alive else "off", message=f"alive: {alive}")


def _running(pid: int) -> bool:  # a killed but unreaped process (a zombie, state "Z") counts as off
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@hookimpl
def omha_fence_devices() -> dict[str, type[FenceDevice]]:
    return {"pid_kill": PidKill}
