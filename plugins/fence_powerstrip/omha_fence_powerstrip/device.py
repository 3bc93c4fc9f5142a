"""The ``apc_snmp`` fence device: APC power strips switched natively over SNMP v1, v2c or v3.

Every action opens one SNMP session, finds the PDU model from its sysObjectID (or takes ``model``), resolves
the node's outlets (numbers, or names looked up in the PDU's outlet-name table), and for ``off`` / ``on``
sends the command to each outlet, then reads the outlets back every ``poll_interval`` seconds until all of
them agree. It succeeds only then; a PDU that does not answer, refuses, or does not reach the state before
the device's ``timeout`` is a failed :class:`~omha_core.fence_devices.FenceResult` naming host, outlet and the
state last seen. Nothing blocks longer than ``timeout`` (``reboot``: twice, plus ``reboot_pause``).

The core calls devices from a worker thread; each action runs its own event loop there (``asyncio.run``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ClassVar, TypeVar

import voluptuous as vol

from omha_core import config_validation as cv
from omha_core.config import read_secret
from omha_core.errors import ConfigError, FenceError
from omha_core.fence_devices import FenceDevice, FenceResult
from omha_fence_powerstrip.models import MODEL_CHOICES
from omha_fence_powerstrip.session import Outlet, PduError, PduSession
from omha_fence_powerstrip.snmp import (
    AUTH_PROTOCOLS,
    PRIV_PROTOCOLS,
    Credentials,
    EnginePool,
    SnmpClient,
    SnmpError,
    scrub,
)

T = TypeVar("T")
DEFAULT_COMMUNITY = "private"  # as fence_apc_snmp


def host(value: Any) -> str:
    """A host name or address (the PDU's management interface)."""
    if isinstance(value, str) and value.strip() and not any(c.isspace() for c in value.strip()):
        return value.strip().strip("[]")
    raise vol.Invalid(f"expected a host name or IP address, got {value!r}")


def port(value: Any) -> int:
    """A UDP port number."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    raise vol.Invalid(f"expected a UDP port number from 1 to 65535, got {value!r}")


def snmp_version(value: Any) -> str:
    """``1``, ``"2c"`` or ``3`` (numbers or strings)."""
    text = str(value).lower() if not isinstance(value, bool) else ""
    if text in ("1", "2c", "3"):
        return text
    if text == "2":
        return "2c"
    raise vol.Invalid(f'expected SNMP version 1, "2c" or 3, got {value!r}')


def _secret_keys(name: str) -> dict[Any, Any]:
    return {
        vol.Optional(name): cv.string,
        vol.Optional(f"{name}_file"): cv.path,
        vol.Optional(f"{name}_env"): cv.string,
    }


def _run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, also when called inside a running event loop."""
    import asyncio  # here, not at the top: loading the plugin (omha status, omha plugins) stays cheap

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["result"] = asyncio.run(factory())
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="omha-apc-snmp", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    result: T = box["result"]
    return result


class ApcSnmpDevice(FenceDevice):
    """An APC switched PDU (Rack PDU, MasterSwitch) driven over SNMP; targets are outlet numbers or names."""

    schema: ClassVar[dict[Any, Any]] = {
        vol.Required("host"): host,
        vol.Optional("port", default=161): port,
        **_secret_keys("community"),
        vol.Optional("version", default="1"): snmp_version,
        vol.Optional("snmp_timeout", default=1.0): cv.positive_float,
        vol.Optional("retries", default=2): cv.non_negative_int,
        vol.Optional("poll_interval", default=0.25): cv.positive_float,
        vol.Optional("model", default="auto"): cv.one_of(*MODEL_CHOICES),
        vol.Optional("username"): cv.string,
        vol.Optional("auth_protocol", default="none"): cv.one_of(*AUTH_PROTOCOLS),
        **_secret_keys("auth_password"),
        vol.Optional("priv_protocol", default="none"): cv.one_of(*PRIV_PROTOCOLS),
        **_secret_keys("priv_password"),
        vol.Optional("context_name", default=""): cv.string,
    }
    can_verify = True

    def __init__(self, name: str, options: Mapping[str, Any]) -> None:
        try:
            checked = vol.Schema(self.schema, extra=vol.ALLOW_EXTRA)(dict(options))
        except vol.Invalid as exc:
            raise ConfigError("\n".join(cv.humanize(exc, f"apc_snmp device {name}"))) from None
        super().__init__(name, checked)
        self._engines = EnginePool()

    # -- plumbing ---------------------------------------------------------------------------------------------

    @property
    def timeout(self) -> float:
        """Seconds an action may take (the device entry's ``timeout``)."""
        return float(self.options.get("timeout", 20.0))

    def credentials(self) -> Credentials:
        """The credentials, secrets read now (``*_file`` / ``*_env`` may change between fences).

        :raises ConfigError: a secret file cannot be read or an environment variable is unset.
        """
        opts = self.options
        return Credentials(
            version=str(opts["version"]),
            community=read_secret(opts, "community", DEFAULT_COMMUNITY) or DEFAULT_COMMUNITY,
            username=str(opts.get("username", "")),
            auth_protocol=str(opts["auth_protocol"]),
            auth_password=read_secret(opts, "auth_password") or "",
            priv_protocol=str(opts["priv_protocol"]),
            priv_password=read_secret(opts, "priv_password") or "",
            context_name=str(opts["context_name"]),
        )

    def _client(self, credentials: Credentials) -> SnmpClient:
        opts = self.options
        return SnmpClient(
            str(opts["host"]),
            int(opts["port"]),
            credentials,
            float(opts["snmp_timeout"]),
            int(opts["retries"]),
            self._engines,
        )

    def _where(self) -> str:
        h = str(self.options["host"])
        return f"{self.name} ({f'[{h}]' if ':' in h else h}:{self.options['port']})"

    def _session_run(self, body: Callable[[PduSession, float], Awaitable[FenceResult]], what: str) -> FenceResult:
        """Run ``body(session, deadline)`` in a fresh SNMP session, cut off after the device's ``timeout``.

        Any failure becomes a failed result that names the device, the action and the outlets' last seen state.
        """
        try:
            credentials = self.credentials()
        except ConfigError as exc:
            return FenceResult(ok=False, message=f"{self._where()}: {what}: {exc}")
        limit = self.timeout

        async def main() -> FenceResult:
            import asyncio

            client = self._client(credentials)
            session = PduSession(client, str(self.options["model"]), float(self.options["poll_interval"]))
            deadline = time.monotonic() + limit
            try:
                async with asyncio.timeout(limit), client:
                    return await body(session, deadline)
            except TimeoutError:
                problem = f"gave up after {limit:g} s (the device's timeout)"
            except (SnmpError, PduError) as exc:
                problem = str(exc).removeprefix(f"{client.where}: ")
            except Exception as exc:  # a library surprise is still a failed result, and still scrubbed below
                problem = f"unexpected {type(exc).__name__}: {exc}"
            seen = session.seen()
            return FenceResult(
                ok=False, message=f"{self._where()}: {what}: {problem}{'; last seen: ' if seen else ''}{seen}"
            )

        result = _run(main)
        message = scrub(result.message, credentials.secrets())
        return FenceResult(result.ok, result.verified, message, result.state)

    async def _switch(self, session: PduSession, deadline: float, targets: list[str], action: str) -> FenceResult:
        """Resolve, command, then poll until verified; stop polling a little before the hard deadline."""
        started = time.monotonic()
        await session.resolve(targets)
        await session.switch(action)
        margin = min(0.5, self.timeout / 10)
        if await session.wait_for(action, deadline - margin):
            took = time.monotonic() - started
            model = session.model.label if session.model else "PDU"
            return FenceResult(
                ok=True,
                verified=True,
                state=action,
                message=f"{self._where()}, {model}: {session.seen()} (verified after {took:.1f} s)",
            )
        late = ", ".join(o.seen() for o in session.outlets if o.state != action)
        error = f"; last read error: {session.last_error}" if session.last_error else ""
        return FenceResult(
            ok=False,
            verified=True,
            message=f"{self._where()}: {action} {', '.join(targets)}: switched {action} but not confirmed within "
            f"{self.timeout:g} s: {late}{error}",
        )

    # -- actions ----------------------------------------------------------------------------------------------

    def off(self, targets: list[str]) -> FenceResult:
        """Switch every target outlet off and succeed once all of them read back off."""
        return self._session_run(lambda s, d: self._switch(s, d, targets, "off"), f"off {', '.join(targets)}")

    def on(self, targets: list[str]) -> FenceResult:
        """Switch every target outlet on and succeed once all of them read back on."""
        return self._session_run(lambda s, d: self._switch(s, d, targets, "on"), f"on {', '.join(targets)}")

    def reboot(self, targets: list[str]) -> FenceResult:
        """Off, verified; ``reboot_pause`` seconds; on. Fenced once off: a failed power-on is reported, not undone."""
        off = self.off(targets)
        if not off.ok:
            return off
        time.sleep(float(self.options.get("reboot_pause", 1.0)))
        on = self.on(targets)
        if on.ok:
            again = on.message.rsplit("(verified", 1)[-1].strip(" )")
            return FenceResult(ok=True, verified=True, state="on", message=f"{off.message}; on again ({again})")
        return FenceResult(
            ok=True, verified=True, state="off", message=f"{off.message}; power on afterwards failed: {on.message}"
        )

    def status(self, targets: list[str]) -> FenceResult:
        """Read the target outlets: ``state="off"`` when every one is off, ``"on"`` when any is on."""

        async def body(session: PduSession, _deadline: float) -> FenceResult:
            outlets = await session.resolve(targets)
            states = {o.state for o in outlets}
            state = "on" if "on" in states else "off" if states == {"off"} else None
            return FenceResult(ok=True, verified=True, state=state, message=f"{self._where()}: {session.seen()}")

        return self._session_run(body, f"status {', '.join(targets)}")

    def list_outlets(self) -> list[Outlet]:
        """Every outlet of the PDU with its number, name and state.

        :raises FenceError: the PDU cannot be read (the message names host and reason, never the community).
        """
        found: list[Outlet] = []

        async def body(session: PduSession, _deadline: float) -> FenceResult:
            found.extend(await session.list_outlets())
            return FenceResult(ok=True, verified=True)

        result = self._session_run(body, "list outlets")
        if not result.ok:
            raise FenceError(result.message)
        return found
