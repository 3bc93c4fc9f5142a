"""A small asyncio SNMP client (GET, SET, walk) over pysnmp's engine API, with errors that name no secret.

pysnmp's high-level API resolves every OID through its MIB machinery (and, with pysmi installed, sets up a
MIB compiler on each request); a fence device only ever sends numeric OIDs, so this module drives the
command generators of ``pysnmp.entity.rfc3413`` directly. pysnmp is imported inside :meth:`SnmpClient.open`,
never at module import, so that ``omha --help`` stays fast.

One :class:`SnmpClient` is one SNMP engine bound to the running event loop: open it, send requests, close it
(``async with``). Every failure is an :class:`SnmpError` whose message names the host and the OID, and never
the community or a v3 key.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

VERSIONS = ("1", "2c", "3")
AUTH_PROTOCOLS = ("none", "md5", "sha", "sha224", "sha256", "sha384", "sha512")
PRIV_PROTOCOLS = ("none", "des", "3des", "aes", "aes192", "aes256")

_AUTH_CONSTANTS = {
    "none": "USM_AUTH_NONE",
    "md5": "USM_AUTH_HMAC96_MD5",
    "sha": "USM_AUTH_HMAC96_SHA",
    "sha224": "USM_AUTH_HMAC128_SHA224",
    "sha256": "USM_AUTH_HMAC192_SHA256",
    "sha384": "USM_AUTH_HMAC256_SHA384",
    "sha512": "USM_AUTH_HMAC384_SHA512",
}
_PRIV_CONSTANTS = {
    "none": "USM_PRIV_NONE",
    "des": "USM_PRIV_CBC56_DES",
    "3des": "USM_PRIV_CBC168_3DES",
    "aes": "USM_PRIV_CFB128_AES",
    "aes192": "USM_PRIV_CFB192_AES",
    "aes256": "USM_PRIV_CFB256_AES",
}
_PARAMS, _TARGET, _COMMUNITY_INDEX = "omha-params", "omha-target", "omha-community"


class SnmpError(Exception):
    """An SNMP request failed; the message names host, port and OID, never a credential."""


class SnmpTimeout(SnmpError):
    """No answer: agent down, wrong address, or (v1/v2c) a community the agent silently ignores."""


class NoSuchObject(SnmpError):
    """The agent has no object at the OID (an outlet number the PDU does not have, another MIB)."""

    def __init__(self, message: str, oid: str) -> None:
        super().__init__(message)
        self.oid = oid


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a community (v1, v2c) or a USM user (v3). ``repr`` hides every secret."""

    version: str = "1"
    community: str = field(default="private", repr=False)
    username: str = ""
    auth_protocol: str = "none"
    auth_password: str = field(default="", repr=False)
    priv_protocol: str = "none"
    priv_password: str = field(default="", repr=False)
    context_name: str = ""

    def secrets(self) -> list[str]:
        """The values that must never appear in a message."""
        return [s for s in (self.community, self.auth_password, self.priv_password) if s]


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret replaced by ``***`` (a last line of defence for library messages)."""
    for secret in secrets:
        if len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def to_python(value: Any) -> int | str:
    """An SNMP value as ``int`` (INTEGER, counters), dotted ``str`` (OID) or ``str`` (OCTET STRING)."""
    from pyasn1.type import univ

    if isinstance(value, univ.Integer):
        return int(value)
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):
        return bytes(value.asOctets()).decode("utf-8", errors="replace").strip('"')
    return str(value.prettyPrint())


class EnginePool:
    """Idle, configured SNMP engines for reuse, keyed by everything their configuration depends on.

    Building a pysnmp engine loads and compiles its MIB modules (a tenth of a second or more); its
    configuration (credentials, target) does not depend on the event loop, only its transport does. So a
    client takes an engine from here, gives it a transport on the running loop, and gives it back closed.
    Thread-safe: two fences through one device at once simply use two engines.
    """

    def __init__(self, max_idle: int = 4) -> None:
        self._idle: list[tuple[Hashable, Any]] = []
        self._lock = threading.Lock()
        self._max_idle = max_idle

    def take(self, key: Hashable) -> Any:
        """An idle engine configured for ``key``, or None."""
        with self._lock:
            for i, (k, eng) in enumerate(self._idle):
                if k == key:
                    del self._idle[i]
                    return eng
        return None

    def give(self, key: Hashable, engine: Any) -> None:
        """Keep ``engine`` (its transport closed) for the next client with ``key``; the oldest go first."""
        with self._lock:
            self._idle.append((key, engine))
            del self._idle[: -self._max_idle]


class SnmpClient:
    """An SNMP manager for one agent.

    :param host: name or address of the agent.
    :param port: its UDP port.
    :param credentials: community or v3 user.
    :param timeout: seconds to wait for one answer.
    :param retries: how many times a request is re-sent after a timeout.
    :param pool: where to take a configured engine from and return it to (None: a fresh engine each time).
    """

    def __init__(
        self,
        host: str,
        port: int,
        credentials: Credentials,
        timeout: float,
        retries: int,
        pool: EnginePool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials
        self.timeout = timeout
        self.retries = retries
        self.pool = pool
        self._engine: Any = None
        self._key: Hashable = None

    @property
    def where(self) -> str:
        """``host:port`` (IPv6 in brackets) for messages."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _error(self, cls: type[SnmpError], message: str) -> SnmpError:
        return cls(scrub(message, self.credentials.secrets()))

    async def __aenter__(self) -> SnmpClient:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # after an error or a cancellation a request may still be pending in the engine: do not reuse it
        self.close(reuse=exc_type is None)

    async def open(self) -> None:
        """Resolve the host, take (or build) an engine configured for it, and open a UDP transport."""
        from pysnmp.carrier.asyncio.dgram import udp, udp6
        from pysnmp.entity import config
        from pysnmp.error import PySnmpError

        family, address = await self._resolve()
        carrier = udp6 if family == socket.AF_INET6 else udp
        key = (self.credentials, family, tuple(address[:2]), self.timeout, self.retries)
        eng = self.pool.take(key) if self.pool else None
        try:
            if eng is None:
                eng = self._build_engine(carrier, tuple(address[:2]))
            transport = carrier.Udp6AsyncioTransport() if carrier is udp6 else carrier.UdpAsyncioTransport()
            config.add_transport(eng, carrier.DOMAIN_NAME, transport.open_client_mode())
        except PySnmpError as exc:
            if eng is not None:
                eng.close_dispatcher()
            raise self._error(SnmpError, f"{self.where}: SNMP setup failed: {exc}") from None
        except OSError as exc:
            if eng is not None:
                eng.close_dispatcher()
            raise self._error(SnmpError, f"{self.where}: cannot open a UDP socket: {exc}") from None
        self._engine, self._key = eng, key

    async def _resolve(self) -> tuple[int, tuple[Any, ...]]:
        """(address family, (address, port)) of the agent.

        A name is resolved in a thread of its own rather than the loop's executor: when the action's deadline
        passes during a slow DNS lookup the lookup is abandoned instead of holding up the end of the loop.
        """
        try:
            ip = ipaddress.ip_address(self.host)
        except ValueError:
            pass
        else:
            return (socket.AF_INET6 if ip.version == 6 else socket.AF_INET), (str(ip), self.port)
        import asyncio  # not at the top: loading the plugin stays cheap (issue 19)

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()

        def deliver(outcome: tuple[Any, BaseException | None]) -> None:
            if not answer.done():
                answer.set_result(outcome)

        def lookup() -> None:
            outcome: tuple[Any, BaseException | None]
            try:
                # AI_ADDRCONFIG: no IPv6 answer on a machine without IPv6 (a name listing ::1 first)
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM, flags=socket.AI_ADDRCONFIG)
                outcome = (infos, None)
            except (OSError, UnicodeError) as exc:
                outcome = (None, exc)
            try:
                loop.call_soon_threadsafe(deliver, outcome)
            except RuntimeError:  # the loop is closed: the action gave up already
                pass

        threading.Thread(target=lookup, name="omha-snmp-resolve", daemon=True).start()
        infos, error = await answer
        if error is not None or not infos:
            raise self._error(SnmpError, f"{self.where}: cannot resolve host {self.host!r}: {error}")
        family, _type, _proto, _name, address = infos[0]
        return family, tuple(address[:2])

    def _build_engine(self, carrier: Any, address: tuple[Any, ...]) -> Any:
        """A new engine with the credentials and the target configured (no transport yet)."""
        from pysnmp.entity import config, engine

        creds = self.credentials
        eng = engine.SnmpEngine()
        if creds.version == "3":
            level = self._configure_v3(config, eng)
            config.add_target_parameters(eng, _PARAMS, creds.username, level, 3)
        else:
            config.add_v1_system(eng, _COMMUNITY_INDEX, creds.community)
            mp_model = 0 if creds.version == "1" else 1
            config.add_target_parameters(eng, _PARAMS, _COMMUNITY_INDEX, "noAuthNoPriv", mp_model)
        config.add_target_address(
            eng,
            _TARGET,
            carrier.DOMAIN_NAME,
            address,
            _PARAMS,
            timeout=max(1, round(self.timeout * 100)),
            retryCount=self.retries,
        )
        return eng

    def _configure_v3(self, config: Any, eng: Any) -> str:
        creds = self.credentials
        if not creds.username:
            raise self._error(SnmpError, f"{self.where}: SNMP version 3 needs a username")
        auth = getattr(config, _AUTH_CONSTANTS[creds.auth_protocol])
        priv = getattr(config, _PRIV_CONSTANTS[creds.priv_protocol])
        if creds.priv_protocol != "none":
            if creds.auth_protocol == "none":
                raise self._error(SnmpError, f"{self.where}: SNMPv3 privacy (priv_protocol) needs an auth_protocol")
            try:
                import cryptography  # noqa: F401  (pysnmp's ciphers need it)
            except ImportError:
                raise self._error(
                    SnmpError,
                    f"{self.where}: SNMPv3 privacy needs the Python package 'cryptography' "
                    "(pip install 'omha-fence-powerstrip[v3]')",
                ) from None
        for proto, key, what in (
            (creds.auth_protocol, creds.auth_password, "auth_password"),
            (creds.priv_protocol, creds.priv_password, "priv_password"),
        ):
            if proto != "none" and len(key) < 8:
                raise self._error(SnmpError, f"{self.where}: SNMPv3 {what} must be at least 8 characters")
        config.add_v3_user(
            eng,
            creds.username,
            auth,
            creds.auth_password or None,
            priv,
            creds.priv_password or None,
        )
        if creds.priv_protocol != "none":
            return "authPriv"
        return "authNoPriv" if creds.auth_protocol != "none" else "noAuthNoPriv"

    def close(self, reuse: bool = True) -> None:
        """Close the engine's socket and timers, and with ``reuse`` hand it back to the pool (idempotent)."""
        if self._engine is not None:
            self._engine.close_dispatcher()
            if reuse and self.pool is not None:
                self.pool.give(self._key, self._engine)
            self._engine = None

    async def _request(self, kind: str, var_binds: list[tuple[Any, Any]], bulk: int = 0) -> list[tuple[str, Any]]:
        """Send one GET / GETNEXT / SET / GETBULK (``bulk`` rows) and return the answer's ``(oid, value)`` pairs."""
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.proto import errind

        if self._engine is None:
            raise self._error(SnmpError, f"{self.where}: SNMP client is not open")
        import asyncio

        answer: asyncio.Future[tuple[Any, Any, Any, Any]] = asyncio.get_running_loop().create_future()

        def on_answer(
            _engine: Any, _handle: Any, indication: Any, status: Any, index: Any, binds: Any, _ctx: Any
        ) -> None:
            if not answer.done():  # a late answer to an abandoned request finds its future cancelled
                answer.set_result((indication, status, index, binds))

        context = self.credentials.context_name
        if kind == "bulk":
            cmdgen.BulkCommandGenerator().send_varbinds(
                self._engine, _TARGET, None, context, 0, bulk, var_binds, on_answer
            )
        else:
            generator = {
                "get": cmdgen.GetCommandGenerator,
                "next": cmdgen.NextCommandGenerator,
                "set": cmdgen.SetCommandGenerator,
            }[kind]()
            generator.send_varbinds(self._engine, _TARGET, None, context, var_binds, on_answer)
        indication, status, index, binds = await answer
        oids = [str(oid) for oid, _value in var_binds]
        if indication:
            text = str(indication)
            if isinstance(indication, errind.RequestTimedOut):
                tries = self.retries + 1
                raise self._error(
                    SnmpTimeout,
                    f"{self.where}: no SNMP answer within {self.timeout:g} s x {tries} "
                    f"tr{'y' if tries == 1 else 'ies'} (agent down or unreachable, wrong port, "
                    "or a community / user the agent does not accept)",
                )
            raise self._error(SnmpError, f"{self.where}: SNMP error for {', '.join(oids)}: {text}")
        if status and int(status):
            position = int(index or 0)
            oid = oids[position - 1] if 0 < position <= len(oids) else ", ".join(oids)
            name = status.prettyPrint()
            if name == "noSuchName" and kind != "set":
                raise NoSuchObject(f"{self.where}: no object {oid}", oid)
            raise self._error(SnmpError, f"{self.where}: agent answered {name} for {oid}")
        return [(str(oid), value) for oid, value in binds]

    async def get(self, oids: Sequence[str]) -> list[int | str]:
        """GET ``oids`` in one request; their values in order.

        :raises NoSuchObject: the agent has no such object (v1 noSuchName, v2c/v3 noSuchObject/Instance).
        """
        from pyasn1.type import univ
        from pysnmp.proto import rfc1902, rfc1905

        binds = await self._request("get", [(rfc1902.ObjectName(oid), univ.Null("")) for oid in oids])
        values: list[int | str] = []
        for oid, value in binds:
            if isinstance(value, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView):
                raise NoSuchObject(f"{self.where}: no object {oid}", oid)
            values.append(to_python(value))
        if len(values) != len(oids):
            raise self._error(SnmpError, f"{self.where}: answer has {len(values)} values for {len(oids)} objects")
        return values

    async def set_integer(self, oid: str, value: int) -> None:
        """SET an INTEGER object; an error status (read-only community, bad value) raises :class:`SnmpError`."""
        from pysnmp.proto import rfc1902, rfc1905

        binds = await self._request("set", [(rfc1902.ObjectName(oid), rfc1902.Integer(value))])
        for got_oid, got in binds:
            if isinstance(got, rfc1905.NoSuchObject | rfc1905.NoSuchInstance | rfc1905.EndOfMibView):
                raise NoSuchObject(f"{self.where}: no writable object {got_oid}", got_oid)

    async def walk(self, column: str, limit: int = 4096) -> list[tuple[str, int | str]]:
        """Walk the subtree ``column``: ``(index suffix, value)`` pairs in OID order.

        GETNEXT one row at a time in v1; GETBULK, 32 rows a request, in v2c and v3.
        """
        from pyasn1.type import univ
        from pysnmp.proto import rfc1902, rfc1905

        prefix = tuple(int(p) for p in column.strip(".").split("."))
        current: tuple[int, ...] = prefix
        rows: list[tuple[str, int | str]] = []
        bulk = 0 if self.credentials.version == "1" else 32
        while len(rows) < limit:
            request = [(rfc1902.ObjectName(current), univ.Null(""))]
            try:
                binds = await self._request("bulk" if bulk else "next", request, bulk)
            except NoSuchObject:  # v1: end of the MIB view
                return rows
            if not binds:
                return rows
            for oid, value in binds:
                parts = tuple(int(p) for p in oid.split("."))
                if isinstance(value, rfc1905.EndOfMibView) or parts[: len(prefix)] != prefix:
                    return rows
                if parts <= current:
                    raise self._error(
                        SnmpError, f"{self.where}: agent's OIDs do not increase at {oid} (walking {column})"
                    )
                rows.append((".".join(str(p) for p in parts[len(prefix) :]), to_python(value)))
                current = parts
        return rows
