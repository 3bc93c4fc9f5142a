"""The ``command`` fence device: your own script, the original's STOMITH callback.

``command`` is a shell command line run once per target with ``OMHA_NODE`` (the node being fenced),
``OMHA_ACTION`` (off, on, reboot, status) and ``OMHA_TARGET`` (the node map value) in its environment, and
``OMHA_PASSWORD`` when ``password``, ``password_file`` or ``password_env`` is set (so the secret stays out
of the command line and the config). Exit
status 0 means done. For ``status`` it prints ``on`` or ``off``. With ``verify = true``, ``off`` and ``reboot``
are followed by a ``status`` call that must print ``off`` (for ``off``) before success is reported.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core import hookimpl
from omha_core.config import read_secret
from omha_core.errors import ConfigError
from omha_core.fence_devices import FenceDevice, FenceResult


class CommandDevice(FenceDevice):
    """Runs a shell command per target."""

    schema = {
        vol.Required("command"): cv.string,
        vol.Optional("verify", default=False): cv.boolean,
        vol.Optional("password"): cv.string,
        vol.Optional("password_file"): cv.path,
        vol.Optional("password_env"): cv.string,
    }

    @property
    def can_verify(self) -> bool:  # type: ignore[override]
        return bool(self.options.get("verify"))

    def _run(self, action: str, target: str, node: str) -> tuple[int, str]:
        env = {**os.environ, "OMHA_NODE": node, "OMHA_ACTION": action, "OMHA_TARGET": target}
        try:
            password = read_secret(self.options, "password")
        except ConfigError as exc:
            return 1, str(exc)
        if password is not None:
            env["OMHA_PASSWORD"] = password
        try:
            out = subprocess.run(
                ["/bin/sh", "-c", str(self.options["command"])],
                env=env,
                capture_output=True,
                text=True,
                timeout=float(self.options.get("timeout", 20.0)),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {self.options.get('timeout', 20.0):g} s"
        text = (out.stdout.strip() + " " + out.stderr.strip()).strip()
        return out.returncode, text

    def _each(self, action: str, targets: list[str]) -> FenceResult:
        for target in targets:
            code, text = self._run(action, target, self.current_node)
            if code != 0:
                return FenceResult(ok=False, message=f"{self.name}: {action} {target}: exit {code}: {text}"[:500])
        return FenceResult(ok=True, message=f"{self.name}: {action} {', '.join(targets)}")

    def off(self, targets: list[str]) -> FenceResult:
        res = self._each("off", targets)
        if not res.ok or not self.can_verify:
            return res
        st = self.status(targets)
        if st.state != "off":
            return FenceResult(ok=False, message=f"{self.name}: off done but status says {st.state or st.message!r}")
        return FenceResult(ok=True, verified=True, message=res.message + " (verified off)")

    def on(self, targets: list[str]) -> FenceResult:
        return self._each("on", targets)

    def reboot(self, targets: list[str]) -> FenceResult:
        if self.can_verify:
            return super().reboot(targets)
        return self._each("reboot", targets)

    def status(self, targets: list[str]) -> FenceResult:
        states = []
        for target in targets:
            code, text = self._run("status", target, self.current_node)
            word = text.split()[0].lower() if text.split() else ""
            if code != 0 or word not in ("on", "off"):
                return FenceResult(ok=False, message=f"{self.name}: status {target}: exit {code}: {text}"[:500])
            states.append(word)
        state = "on" if "on" in states else "off"
        return FenceResult(ok=True, verified=True, state=state, message=f"{self.name}: {state}")


@hookimpl
def omha_fence_devices() -> dict[str, Any]:
    return {"command": CommandDevice}
