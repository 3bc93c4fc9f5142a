"""A small etcd v3 client over etcd's JSON gateway (HTTP/1.1, JSON, keys and values in base64), standard library only.

Why not a gRPC client: python-etcd3 is unmaintained and breaks on protobuf 4+, and grpcio is a heavy binary
dependency for a few calls. etcd serves every RPC omha needs through its gRPC gateway on the client port
(``/v3/...`` since etcd 3.4), which is what Patroni uses too. See the plugin README.

Every call goes to the endpoint that answered last; on a connection failure, a timeout or an "unavailable"
answer (no leader, leader changed, request timed out) it moves on to the next endpoint, for at most
``timeout * (endpoints + 1)`` seconds, then raises :class:`~omha_core.errors.StoreError` naming each endpoint and
why it failed. Other errors from etcd (permission denied, ...) raise at once. The password is sent only in the
body of ``/v3/auth/authenticate`` and never appears in a message.

The gateway encodes 64-bit integers as JSON strings and leaves out fields at their zero value (``"type"`` of a
PUT event, ``"succeeded": false``, an empty ``"kvs"``); the helpers here read them with those defaults.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from omha_core.errors import StoreError, StoreUnavailable
from omha_membership_etcd.options import EtcdOptions

log = logging.getLogger(__name__)

API = "/v3/"

# gRPC status codes, as the gateway reports them in "code"
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
UNAVAILABLE = 14
UNAUTHENTICATED = 16
#: answers that say "this member cannot serve now, another may": try the next endpoint
RETRIABLE = frozenset({DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE})
#: pause after every endpoint failed once, before trying them again
ROUND_PAUSE = 0.1


class EtcdError(StoreError):
    """etcd refused a request (permission denied, lease not found, ...). ``code`` is the gRPC status code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class WatchBroken(StoreError):
    """An open watch stopped delivering (connection lost, stream closed, garbage)."""


class _EndpointFailure(Exception):
    """One endpoint could not serve one request; the reason is kept for the final message.

    ``busy``: the member answered that it cannot serve *now* (no leader, request timed out): worth asking again.
    """

    def __init__(self, reason: str, busy: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.busy = busy


class _LoginExpired(Exception):
    """etcd refused a watch because its token is no longer valid."""


class _ServerError(Exception):
    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def b64(data: str | bytes) -> str:
    """Base64 of a key or value, as the gateway expects it."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode("ascii")


def unb64(text: Any) -> bytes:
    """The bytes of a base64 field (absent means empty)."""
    return base64.b64decode(text) if isinstance(text, str) and text else b""


def as_int(value: Any) -> int:
    """A gateway integer (a JSON string, or absent for zero)."""
    try:
        return int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class KeyValue:
    """One key as etcd returns it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> KeyValue:
        return cls(
            key=unb64(doc.get("key")).decode(errors="replace"),
            value=unb64(doc.get("value")),
            create_revision=as_int(doc.get("create_revision")),
            mod_revision=as_int(doc.get("mod_revision")),
            version=as_int(doc.get("version")),
            lease=as_int(doc.get("lease")),
        )


def revision_of(response: Mapping[str, Any]) -> int:
    """The store revision in a response's header."""
    header = response.get("header")
    return as_int(header.get("revision")) if isinstance(header, Mapping) else 0


def kvs_of(response: Mapping[str, Any]) -> list[KeyValue]:
    """The keys of a range response (or of a txn's ``response_range``)."""
    return [KeyValue.from_json(kv) for kv in response.get("kvs") or () if isinstance(kv, Mapping)]


def compare_absent(key: str) -> dict[str, Any]:
    """A transaction compare: ``key`` does not exist."""
    return {"target": "CREATE", "key": b64(key), "result": "EQUAL", "create_revision": "0"}


def compare_unchanged(key: str, mod_revision: int) -> dict[str, Any]:
    """A transaction compare: ``key`` was last modified at ``mod_revision`` (0: it does not exist)."""
    return {"target": "MOD", "key": b64(key), "result": "EQUAL", "mod_revision": str(mod_revision)}


def range_result(responses: list[dict[str, Any]]) -> list[KeyValue]:
    """The keys read by a transaction's ``request_range``."""
    for resp in responses:
        found = resp.get("response_range")
        if isinstance(found, Mapping):
            return kvs_of(found)
    return []


TIMED_OUT = "no answer in time"
LOGIN_HINT = "etcd requires a login: set [etcd] username and password_file"


def _needs_login(exc: _ServerError) -> bool:
    """etcd wants a (new) token: it expired, or authentication was enabled since this client started."""
    return exc.code == UNAUTHENTICATED or (exc.code == INVALID_ARGUMENT and "user name is empty" in exc.message)


def _reason(exc: BaseException) -> str:
    """A short, secret-free reason for a transport failure."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is etcd running there?)"
    if isinstance(exc, TimeoutError):
        return TIMED_OUT
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message} (check [etcd] ca_file)"
    if isinstance(exc, ssl.SSLEOFError):
        return (
            "TLS: etcd closed the connection (does it want a client certificate? check [etcd] cert_file and key_file)"
        )
    if isinstance(exc, ssl.SSLError):
        if exc.reason and ("BAD_CERTIFICATE" in exc.reason or "CERTIFICATE_REQUIRED" in exc.reason):
            return f"TLS: etcd refused this client's certificate ({exc.reason}; check [etcd] cert_file and key_file)"
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed by the server"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class EtcdClient:
    """A thread-safe client for one etcd cluster. Connections are kept open and reused (HTTP keep-alive)."""

    def __init__(self, options: EtcdOptions) -> None:
        self.options = options
        self._urls = list(options.endpoints)
        self._parts = [urlsplit(u) for u in self._urls]
        self._current = 0
        self._conns: dict[int, http.client.HTTPConnection] = {}
        self._tokens: dict[int, str] = {}
        self._lock = threading.RLock()
        self._ssl: ssl.SSLContext | None = None
        self._warned_no_auth = False

    # -- plumbing -----------------------------------------------------------------------------------------
    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            opts = self.options
            try:
                ctx = ssl.create_default_context(cafile=opts.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise StoreError(
                    f"[etcd] ca_file {opts.ca_file}: cannot load the CA certificate: {_reason(exc)}"
                ) from None
            if opts.cert_file:
                try:
                    ctx.load_cert_chain(opts.cert_file, opts.key_file)
                except (OSError, ssl.SSLError) as exc:
                    raise StoreError(
                        f"[etcd] cert_file {opts.cert_file} / key_file {opts.key_file}: "
                        f"cannot load the client certificate: {_reason(exc)}"
                    ) from None
            self._ssl = ctx
        return self._ssl

    def _new_connection(self, idx: int, timeout: float) -> http.client.HTTPConnection:
        parts = self._parts[idx]
        host, port = parts.hostname or "localhost", parts.port
        if parts.scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl_context())
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _drop(self, idx: int) -> None:
        conn = self._conns.pop(idx, None)
        if conn is not None:
            conn.close()

    def _exchange(
        self, conn: http.client.HTTPConnection, path: str, body: Mapping[str, Any], token: str | None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        conn.request("POST", API + path, body=json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            doc = json.loads(data) if data else {}
        except ValueError:
            doc = None
        if resp.status == 404 and not isinstance(doc, Mapping):
            raise _EndpointFailure(f"HTTP 404: no etcd v3 JSON gateway at {API} (etcd 3.4 or newer is needed)")
        return resp.status, doc

    def _post(self, idx: int, path: str, body: Mapping[str, Any], timeout: float, token: str | None) -> Any:
        """One request on one endpoint; raises _EndpointFailure (try another) or _ServerError (etcd said no)."""
        for attempt in (1, 2):
            conn = self._conns.get(idx)
            reused = conn is not None
            if conn is None:
                conn = self._conns[idx] = self._new_connection(idx, timeout)
            else:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                status, doc = self._exchange(conn, path, body, token)
            except _EndpointFailure:
                self._drop(idx)
                raise
            except (OSError, http.client.HTTPException) as exc:
                self._drop(idx)
                stale = isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError)
                if reused and stale and attempt == 1:
                    continue  # a kept-alive connection the server had closed: retry once on a fresh one
                raise _EndpointFailure(_reason(exc)) from None
            if not isinstance(doc, Mapping):
                raise _EndpointFailure(f"HTTP {status}: not a JSON answer (is this an etcd client URL?)")
            err = doc.get("error")
            if status == 200 and not isinstance(err, Mapping):
                return doc
            if isinstance(err, Mapping):  # streaming RPCs report errors inside a 200 answer
                raise _ServerError(as_int(err.get("grpc_code")) or None, str(err.get("message") or err))
            raise _ServerError(
                as_int(doc.get("code")) or None, str(doc.get("message") or doc.get("error") or f"HTTP {status}")
            )
        raise _EndpointFailure("connection closed by the server")  # pragma: no cover - loop always returns

    def _authenticate(self, idx: int, timeout: float) -> None:
        """Get a token from endpoint ``idx`` when a user name is configured."""
        opts = self.options
        if not opts.username or idx in self._tokens:
            return
        body = {"name": opts.username, "password": opts.password or ""}
        try:
            doc = self._post(idx, "auth/authenticate", body, timeout, None)
        except _ServerError as exc:
            if "not enabled" in exc.message:
                self._tokens[idx] = ""
                if not self._warned_no_auth:
                    self._warned_no_auth = True
                    log.warning("etcd %s: authentication is not enabled; [etcd] username is unused", self._urls[idx])
                return
            if exc.code in RETRIABLE:
                raise _EndpointFailure(exc.message, busy=True) from None
            raise EtcdError(
                f"etcd {self._urls[idx]}: authentication as user {opts.username!r} failed: {exc.message} "
                "(check [etcd] username and the password in password_file / password_env)",
                exc.code,
            ) from None
        self._tokens[idx] = str(doc.get("token") or "")

    # -- the one entry point ------------------------------------------------------------------------------
    def call(self, path: str, body: Mapping[str, Any], what: str = "", timeout: float | None = None) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>`` on a working endpoint and return the decoded answer.

        :param what: what the call does, for messages (``"read /omha/c/status/"``).
        :param timeout: seconds per endpoint attempt (default ``[etcd] timeout``).
        :raises EtcdError: etcd refused the request.
        :raises StoreError: no endpoint could serve it.
        """
        per_try = timeout or self.options.timeout
        n = len(self._urls)
        what = what or path
        with self._lock:
            deadline = time.monotonic() + per_try * (n + 1)
            failures: dict[str, str] = {}
            reauthed = False
            tried = 0
            busy = False  # some member answered "not now" in this round
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                idx = self._current
                try:
                    self._authenticate(idx, min(per_try, remaining))
                    doc = self._post(idx, path, body, min(per_try, remaining), self._tokens.get(idx))
                    return dict(doc)
                except _ServerError as exc:
                    if _needs_login(exc):
                        if self.options.username and not reauthed:
                            self._tokens.pop(idx, None)  # token expired or auth enabled since: log in again
                            reauthed = True
                            continue
                        hint = "" if self.options.username else f" ({LOGIN_HINT})"
                        raise EtcdError(f"etcd {self._urls[idx]}: {what}: {exc.message}{hint}", exc.code) from None
                    if exc.code not in RETRIABLE:
                        raise EtcdError(f"etcd {self._urls[idx]}: {what}: {exc.message}", exc.code) from None
                    failures[self._urls[idx]] = exc.message
                    busy = True
                except _EndpointFailure as exc:
                    failures[self._urls[idx]] = exc.reason
                    busy = busy or exc.busy or exc.reason == TIMED_OUT
                self._current = (idx + 1) % n
                tried += 1
                if tried % n == 0:
                    if not busy:
                        break  # nothing listens, or nothing speaks etcd: asking again would not help
                    busy = False
                    time.sleep(max(0.0, min(ROUND_PAUSE, deadline - time.monotonic())))
            detail = "; ".join(f"{url}: {reason}" for url, reason in failures.items()) or "no endpoint answered in time"
            raise StoreUnavailable(f"etcd unreachable ({what}): {detail}")

    def close(self) -> None:
        """Close every kept-alive connection."""
        with self._lock:
            for idx in list(self._conns):
                self._drop(idx)

    @property
    def current_endpoint(self) -> str:
        """The endpoint that answered last (or will be tried first)."""
        return self._urls[self._current]

    # -- key/value ----------------------------------------------------------------------------------------
    def range(self, key: str, end: bytes | None = None, what: str = "") -> tuple[list[KeyValue], int]:
        """Keys ``key`` (or ``[key, end)``), and the revision they were read at."""
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        doc = self.call("kv/range", body, what or f"read {key}")
        return kvs_of(doc), revision_of(doc)

    def put(self, key: str, value: bytes, lease: int = 0, what: str = "") -> int:
        """Write ``key``; returns the new revision."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return revision_of(self.call("kv/put", body, what or f"write {key}"))

    def delete(self, key: str, end: bytes | None = None, what: str = "") -> int:
        """Delete ``key`` (or ``[key, end)``); returns the revision after the delete."""
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        return revision_of(self.call("kv/deleterange", body, what or f"delete {key}"))

    def txn(
        self,
        compare: Sequence[Mapping[str, Any]],
        success: Sequence[Mapping[str, Any]],
        failure: Sequence[Mapping[str, Any]] = (),
        what: str = "",
    ) -> tuple[bool, list[dict[str, Any]], int]:
        """An atomic transaction: ``(succeeded, responses, revision)``."""
        body = {"compare": list(compare), "success": list(success), "failure": list(failure)}
        doc = self.call("kv/txn", body, what or "transaction")
        responses = [r for r in doc.get("responses") or () if isinstance(r, dict)]
        return bool(doc.get("succeeded", False)), responses, revision_of(doc)

    # -- leases -------------------------------------------------------------------------------------------
    def lease_grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: ``(id, granted ttl)``."""
        doc = self.call("lease/grant", {"TTL": str(ttl)}, f"grant a {ttl}s lease")
        if doc.get("error"):
            raise EtcdError(f"etcd {self.current_endpoint}: grant a {ttl}s lease: {doc['error']}")
        return as_int(doc.get("ID")), as_int(doc.get("TTL"))

    def lease_keepalive(self, lease: int, timeout: float | None = None) -> int:
        """Refresh ``lease``; returns its remaining TTL, 0 or less when it no longer exists."""
        doc = self.call("lease/keepalive", {"ID": str(lease)}, f"keep lease {lease:x} alive", timeout)
        result = doc.get("result", doc)
        return as_int(result.get("TTL")) if isinstance(result, Mapping) else 0

    def lease_revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting every key attached to it."""
        try:
            self.call("lease/revoke", {"ID": str(lease)}, f"revoke lease {lease:x}")
        except EtcdError as exc:
            if exc.code != NOT_FOUND:
                raise

    # -- watches ------------------------------------------------------------------------------------------
    def watch(self, key: str, end: bytes | None, start_revision: int, deadline: float) -> WatchStream:
        """Open a watch on ``[key, end)`` from ``start_revision`` (with previous values), on its own connection."""
        body: dict[str, Any] = {"key": b64(key), "prev_kv": True}
        if end is not None:
            body["range_end"] = b64(end)
        if start_revision > 0:
            body["start_revision"] = str(start_revision)
        failures: dict[str, str] = {}
        relogged = False
        for _ in range(len(self._urls) + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._lock:
                idx = self._current
                try:
                    self._authenticate(idx, min(self.options.timeout, remaining))
                except _EndpointFailure as exc:
                    failures[self._urls[idx]] = exc.reason
                    self._current = (idx + 1) % len(self._urls)
                    continue
                token = self._tokens.get(idx)
                conn = self._new_connection(idx, min(self.options.timeout, remaining))
            stream = WatchStream(conn, self._urls[idx])
            try:
                stream.start(body, token, deadline)
                return stream
            except _LoginExpired as exc:
                stream.close()
                if relogged or not self.options.username:
                    raise StoreError(f"etcd {self._urls[idx]}: watch refused: {exc}") from None
                relogged = True
                with self._lock:
                    self._tokens.pop(idx, None)  # the token expired: log in again on the next round
            except _EndpointFailure as exc:
                stream.close()
                failures[self._urls[idx]] = exc.reason
                with self._lock:
                    self._current = (idx + 1) % len(self._urls)
            except BaseException:
                stream.close()
                raise
        detail = "; ".join(f"{url}: {reason}" for url, reason in failures.items()) or "no time left"
        raise StoreUnavailable(f"etcd unreachable (watch {key}): {detail}")


class WatchStream:
    """One open watch: results arrive as newline-separated JSON objects on a long HTTP answer."""

    def __init__(self, conn: http.client.HTTPConnection, url: str) -> None:
        self._conn = conn
        self._resp: http.client.HTTPResponse | None = None
        self.url = url

    def start(self, body: Mapping[str, Any], token: str | None, deadline: float) -> None:
        """Send the create request and wait for etcd to confirm it."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = token
        try:
            payload = json.dumps({"create_request": body}).encode()
            self._conn.request("POST", API + "watch", body=payload, headers=headers)
            self._resp = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            raise _EndpointFailure(_reason(exc)) from None
        if self._resp.status != 200:
            raise _EndpointFailure(f"HTTP {self._resp.status} on watch")
        try:
            first = self.next(deadline)
        except WatchBroken as exc:
            raise _EndpointFailure(str(exc)) from None
        if first is None:
            raise _EndpointFailure("watch not confirmed in time")
        if not first.get("created"):
            raise _EndpointFailure(f"unexpected first watch answer: {sorted(first)}")
        if first.get("canceled"):
            reason = str(first.get("cancel_reason") or "")
            if "Unauthenticated" in reason or "invalid auth token" in reason:
                raise _LoginExpired(reason)
            raise StoreError(f"etcd {self.url}: watch refused: {first.get('cancel_reason') or 'canceled'}")

    def next(self, deadline: float) -> dict[str, Any] | None:
        """The next result (``{"header", "events", ...}``), or None when ``deadline`` passed first."""
        assert self._resp is not None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self._conn.sock is not None:
                self._conn.sock.settimeout(remaining)
            try:
                line = self._resp.readline()
            except TimeoutError:
                return None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                raise WatchBroken(f"etcd {self.url}: watch: {_reason(exc)}") from None
            if not line:
                raise WatchBroken(f"etcd {self.url}: watch stream closed by the server")
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                raise WatchBroken(f"etcd {self.url}: watch stream sent something that is not JSON") from None
            if isinstance(doc.get("error"), Mapping):
                raise StoreError(f"etcd {self.url}: watch failed: {doc['error'].get('message') or doc['error']}")
            result = doc.get("result")
            if isinstance(result, dict):
                return result

    def close(self) -> None:
        """Cancel the watch by closing its connection."""
        self._conn.close()
