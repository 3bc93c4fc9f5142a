"""Operations on one APC PDU during one action: find the model, resolve outlets, switch, poll until verified.

A :class:`PduSession` lives for one fence action inside one event loop. It remembers what it saw (the model,
each outlet's last state and the last read error) so that a failure report, even one cut short by the
action's deadline, says which outlet was last seen in which state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from omha_fence_powerstrip.models import MODELS, SYS_OBJECT_ID, PduModel, UnsupportedModel, model_for
from omha_fence_powerstrip.snmp import NoSuchObject, SnmpClient, SnmpError, SnmpTimeout


class PduError(Exception):
    """An action cannot go on (no such outlet, refused command, unsupported model); the message says why."""


@dataclass
class Outlet:
    """One outlet as last seen: its number, its name on the PDU ("" if unknown), its state (None = unknown)."""

    number: int
    name: str = ""
    state: str | None = None
    raw: int | None = None

    def label(self) -> str:
        """``outlet 3 'web1'`` (or ``outlet 3``) for messages."""
        return f"outlet {self.number} {self.name!r}" if self.name else f"outlet {self.number}"

    def seen(self) -> str:
        """``outlet 3 'web1' off`` with the raw value when the state is not on/off."""
        if self.state is not None:
            return f"{self.label()} {self.state}"
        if self.raw is not None:
            return f"{self.label()} in state {self.raw} (neither on nor off)"
        return f"{self.label()} state unknown"


class PduSession:
    """One PDU seen through an open :class:`SnmpClient`.

    :param client: the open client.
    :param model: ``"auto"`` (detect from sysObjectID) or a key of :data:`~omha_fence_powerstrip.models.MODELS`.
    :param poll_interval: seconds between state reads while waiting for an outlet to follow a command.
    """

    def __init__(self, client: SnmpClient, model: str = "auto", poll_interval: float = 0.25) -> None:
        self.client = client
        self.model_option = model
        self.poll_interval = poll_interval
        self.model: PduModel | None = None
        self.outlets: list[Outlet] = []
        self.last_error: str = ""

    def seen(self) -> str:
        """Every resolved outlet's last seen state, for messages ("" before any state was read)."""
        if not any(o.state or o.raw is not None for o in self.outlets):
            return ""
        return ", ".join(o.seen() for o in self.outlets)

    async def detect(self) -> PduModel:
        """The PDU model: the configured one, else from the agent's sysObjectID."""
        if self.model is not None:
            return self.model
        if self.model_option != "auto":
            self.model = MODELS[self.model_option]
            return self.model
        (sys_object_id,) = await self.client.get([SYS_OBJECT_ID])
        try:
            self.model = model_for(str(sys_object_id))
        except UnsupportedModel as exc:
            raise PduError(str(exc)) from None
        return self.model

    async def resolve(self, targets: list[str]) -> list[Outlet]:
        """Outlets for ``targets``: a number is an outlet number, anything else an outlet name.

        A name matches every outlet that carries it exactly (both supplies of a server are often labelled
        alike); a name that matches none is an error listing the names the PDU has.
        """
        model = await self.detect()
        numbers: list[int] = []
        names = [t for t in targets if not t.strip().isdigit()]
        table: list[tuple[str, int | str]] = await self.client.walk(model.names) if names else []
        for target in targets:
            target = target.strip()
            if target.isdigit():
                numbers.append(int(target))
                continue
            matches = [int(index) for index, name in table if index.isdigit() and str(name).strip() == target]
            if not matches:
                known = ", ".join(repr(str(n)) for _i, n in table[:32]) or "none"
                raise PduError(f"no outlet named {target!r} (outlet names: {known})")
            numbers += matches
        if not numbers:
            raise PduError("no outlet given")
        self.outlets = [Outlet(n) for n in dict.fromkeys(numbers)]
        await self.read(names=True)
        return self.outlets

    async def read(self, names: bool = False) -> list[Outlet]:
        """Read the state (and with ``names`` the name) of every resolved outlet in one request."""
        model = await self.detect()
        oids = [model.status_oid(o.number) for o in self.outlets]
        if names:
            oids += [f"{model.names}.{o.number}" for o in self.outlets]
        try:
            values = await self.client.get(oids)
        except NoSuchObject as exc:
            number = exc.oid.rsplit(".", 1)[-1]
            raise PduError(f"outlet {number} does not exist on this PDU ({model.label}: no object {exc.oid})") from None
        for outlet, value in zip(self.outlets, values[: len(self.outlets)], strict=True):
            outlet.raw = value if isinstance(value, int) else None
            outlet.state = model.state_of(value) if isinstance(value, int) else None
        if names:
            for outlet, name in zip(self.outlets, values[len(self.outlets) :], strict=True):
                outlet.name = str(name).strip()
        return self.outlets

    async def switch(self, action: str) -> None:
        """Send ``action`` (``"on"`` / ``"off"``) to every resolved outlet, in order."""
        model = await self.detect()
        for outlet in self.outlets:
            try:
                await self.client.set_integer(model.control_oid(outlet.number), model.commands[action])
            except SnmpTimeout:
                raise
            except SnmpError as exc:
                raise PduError(
                    f"{outlet.label()}: the PDU refused to switch it {action} ({exc}; is the community read-write?)"
                ) from None

    async def wait_for(self, wanted: str, deadline: float) -> bool:
        """Poll until every resolved outlet reads ``wanted`` (True) or the monotonic ``deadline`` passes (False).

        A read that gets no answer is remembered and polling goes on: a PDU busy switching relays may drop a
        request. Any other error ends the wait.
        """
        import asyncio  # not at the top: loading the plugin stays cheap (issue 19)

        while True:
            try:
                await self.read()
                self.last_error = ""
                if all(o.state == wanted for o in self.outlets):
                    return True
            except SnmpTimeout as exc:
                self.last_error = str(exc)
            if time.monotonic() + self.poll_interval > deadline:
                return False
            await asyncio.sleep(self.poll_interval)

    async def list_outlets(self) -> list[Outlet]:
        """Every outlet of the PDU with its name and state (the name column walked, then states read)."""
        model = await self.detect()
        table = await self.client.walk(model.names)
        self.outlets = [Outlet(int(index), str(name).strip()) for index, name in table if index.isdigit()]
        if self.outlets:
            await self.read()
        return self.outlets
