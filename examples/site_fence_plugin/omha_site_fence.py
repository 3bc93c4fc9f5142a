"""A site fencing plugin in 20 lines: "power off" a node by SIGKILLing the process group in its pid file."""

import os
import signal
import time

import voluptuous as vol

from omha_core import hookimpl
from omha_core.fence_devices import FenceDevice, FenceResult


class PidKill(FenceDevice):
    schema = {vol.Required("pid_dir"): str}  # the device's own options, validated by omha
    can_verify = True

    def _pid(self, target: str) -> int:
        with open(os.path.join(self.options["pid_dir"], f"{target}.pid")) as fh:
            return int(fh.read())

    def off(self, targets: list[str]) -> FenceResult:
        for t in targets:
            try:
                os.killpg(self._pid(t), signal.SIGKILL)
            except (OSError, ValueError) as exc:
                return FenceResult(ok=False, message=f"{t}: {exc}")
        for _ in range(100):  # verified: ok only once every target is really gone (poll up to 5 s)
            state = self.status(targets).state
            if state == "off":
                break
            time.sleep(0.05)
        return FenceResult(ok=state == "off", verified=True, state=state, message=f"{targets}: {state}")

    def on(self, targets: list[str]) -> FenceResult:
        return FenceResult(ok=False, message="pid_kill cannot power a node on")

    def status(self, targets: list[str]) -> FenceResult:
        alive = [t for t in targets if _running(self._pid(t))]
        return FenceResult(ok=True, verified=True, state="on" if alive else "off", message=f"alive: {alive}")


def _running(pid: int) -> bool:  # a killed but unreaped process (zombie, "Z") counts as off
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@hookimpl
def omha_fence_devices() -> dict[str, type[FenceDevice]]:
    return {"pid_kill": PidKill}
