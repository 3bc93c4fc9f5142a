"""The ``command`` fence device: your own script, the original's STOMITH callback.

``command`` is a shell command line run once per target with ``OMHA_NODE`` (the node being fenced),
``OMHA_ACTION`` (off, on, reboot, status) and ``OMHA_TARGET`` (the node map value) in its environment, and
``OMHA_PASSWORD`` when ``password``, ``password_file`` or ``password_env`` is set (so the secret stays out
of the command line and the config). Exit status 0 means done. For ``status`` it prints ``on`` or ``off``.

Each run may take ``timeout`` seconds (a native ``reboot`` run: twice that plus ``reboot_pause``); at the
deadline its whole process group is killed. A node with several targets (two power supplies) is never
rebooted target by target: the core switches every target off, pauses, then switches every target on (see
:meth:`omha_core.fence_devices.FenceDevice.fence`).

Verification. ``status_command`` (optional) is run instead of ``command`` for ``status``, with the same
environment; it prints ``on`` or ``off``. ``verify`` says whether ``off`` is read back with a status run per
target: it defaults to true when ``status_command`` is set, false otherwise (``command`` alone may not
implement ``status``: a script written for off/on only would be run a second time, as if asked to switch).
With verification, ``off`` succeeds verified when every target reads ``off``, fails when one still reads
``on``, and succeeds *unverified* (the reason in the result) when the answer is neither (a status run that
fails, or prints something else); ``reboot`` becomes that off, the pause, and on.
"""

from __future__ import annotations

import os

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.errors import ConfigError
from omha_core.fence_devices import DEFAULT_TIMEOUT, FenceDevice, FenceResult, run_process
from omha_core.secrets import read_secret, scrub


class CommandDevice(FenceDevice):
    """Runs a shell command per target."""

    schema = {
        vol.Required("command"): cv.string,
        vol.Optional("status_command"): cv.string,
        # default: true when status_command is set (see can_verify)
        vol.Optional("verify"): cv.boolean,
        vol.Optional("password"): cv.string,
        vol.Optional("password_file"): cv.path,
        vol.Optional("password_env"): cv.string,
    }

    @property
    def can_verify(self) -> bool:  # type: ignore[override]
        """Whether ``off`` is read back: ``verify``, by default true exactly when ``status_command`` is set."""
        verify = self.options.get("verify")
        return bool(self.options.get("status_command")) if verify is None else bool(verify)

    @property
    def timeout(self) -> float:
        """Seconds one run of the command may take."""
        return self.option_float("timeout", DEFAULT_TIMEOUT)

    def max_duration(self, action: str, targets: list[str]) -> float:
        """One run per target; ``off`` with ``verify`` adds a status run per target; a native ``reboot`` run
        gets twice the timeout plus the pause (see :meth:`_native_reboot_timeout`)."""
        runs = max(1, len(targets))
        if action == "off" and self.can_verify:
            return 2 * runs * self.timeout
        if action == "reboot" and len(targets) == 1 and not self.can_verify:
            return self._native_reboot_timeout()
        if action == "reboot":
            return super().max_duration(action, targets)
        return runs * self.timeout

    def _native_reboot_timeout(self) -> float:
        """A script's own reboot switches off, waits, and switches on: two runs' worth and the pause."""
        return 2 * self.timeout + self.reboot_pause

    def _run(self, action: str, target: str, node: str) -> tuple[int, str]:
        env = {**os.environ, "OMHA_NODE": node, "OMHA_ACTION": action, "OMHA_TARGET": target}
        try:
            password = read_secret(self.options, "password")
        except ConfigError as exc:
            return 1, str(exc)
        if password is not None:
            env["OMHA_PASSWORD"] = password
        limit = self._native_reboot_timeout() if action == "reboot" else self.timeout
        command = self.options.get("status_command") if action == "status" else None
        out = run_process(["/bin/sh", "-c", str(command or self.options["command"])], limit, env=env)
        text = (out.stdout.strip() + " " + out.stderr.strip()).strip()
        if password:
            text = scrub(text, [password])
        if out.returncode is None:
            return 124, f"timed out after {limit:g} s (killed){': ' + text if text else ''}"
        return out.returncode, text

    def _each(self, action: str, targets: list[str]) -> FenceResult:
        """Run ``action`` for every target, also after one failed (``on`` must reach every supply); ok only
        when every run succeeded."""
        failures = []
        for target in targets:
            code, text = self._run(action, target, self.current_node)
            if code != 0:
                failures.append(f"{action} {target}: exit {code}: {text}"[:300])
        if failures:
            return FenceResult(ok=False, message=f"{self.name}: " + "; ".join(failures))
        why = ""
        if not self.can_verify:
            why = "verify = false" if self.options.get("verify") is False else "no status_command configured"
        return FenceResult(ok=True, message=f"{self.name}: {action} {', '.join(targets)}", unverified_reason=why)

    def off(self, targets: list[str]) -> FenceResult:
        """Off on every target; with verification, read back: ``off`` verified, ``on`` failed, anything else
        (no answer, or neither word) done but unverified."""
        res = self._each("off", targets)
        if not res.ok or not self.can_verify:
            return res
        st = self.status(targets)
        if st.ok and st.state == "off":
            return FenceResult(ok=True, verified=True, state="off", message=res.message + " (verified off)")
        if st.ok:
            return FenceResult(ok=False, message=f"{self.name}: off done but status says {st.state!r}")
        why = f"the status query gave no on/off answer ({st.message.removeprefix(self.name + ': ')})"
        return FenceResult(ok=True, message=f"{res.message}; unverified: {why}", unverified_reason=why)

    def on(self, targets: list[str]) -> FenceResult:
        return self._each("on", targets)

    def reboot(self, targets: list[str]) -> FenceResult:
        """One target: the script's own ``reboot``, or with ``verify`` a verified power cycle."""
        if self.can_verify:
            return self.power_cycle(targets)
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
