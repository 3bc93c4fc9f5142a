"""The ``sharedfs`` store and membership: a directory every node mounts (the original's MFS model).

Layout under ``[sharedfs] path``::

    cltab, hactl              the cluster's documents, edited in place by operators or written by omha
    operator                  the operators' standing orders (omha move/standby/cleanup), JSON
    nodes/<node>/status.json  each node's status, written only by that node (atomic rename)
    nodes/<node>/cltab|hactl  the version that node adopted (runs now): the fallbacks when the top-level
                              file is invalid, so a daemon started then runs what the others run
    claims/<group>.json       group claims, created with link(2): exactly one node wins
    fence/<node>.<inc>.lock   who fences one incarnation of a lost node (link(2) again)
    fence/<node>.json         the last fence record of a node
    .doclock                  flock(2) taken around compare-and-swap writes of cltab/hactl/operator

The filesystem must make a rename visible atomically and promptly to every node: on NFS mount with
``actimeo=0`` (or ``noac``) and ``lookupcache=none`` so that heartbeats and claims are not hidden by
attribute caching; CephFS and GlusterFS are coherent by default.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from omha_core.backends import STORED_DOCUMENTS, Membership, Store, Versioned
from omha_core.errors import ConfigError, ConflictError, StoreError
from omha_core.fsutil import atomic_write, atomic_write_json, create_exclusive
from omha_core.status_json import StatusEncoder

if TYPE_CHECKING:
    from omha_core.config import Config


@contextmanager
def _writing(path: str) -> Iterator[None]:
    """Turn a failed write into a StoreError naming the file: a shared directory that turned read-only or full
    on this node is a store failure (the daemon isolates and says why), not a crash of the cycle."""
    try:
        yield
    except OSError as exc:
        raise StoreError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _version(text: str) -> str:
    import hashlib  # not at import time: `omha --help` / `omha plugins` load this module

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]  # the bytes, as read


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_fd(fd: int) -> bytes:
    """Everything left in the open file ``fd``, read with no buffered text layer on top: a cycle reads every
    claim, fence record and status in the directory, and ``open()``'s layers cost five more system calls a file
    than the read itself (an idle daemon with 50 claims spent a fifth of its CPU there, issue 19)."""
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def _read_json(path: str) -> Any:
    return json.loads(_read_bytes(path))


class SharedDirStore(Store):
    """A status store in a shared directory."""

    def __init__(self, config: Config, path: str | None = None) -> None:
        super().__init__(config)
        base = path or config.section("sharedfs").get("path")
        if not base:
            raise ConfigError(f"{config.path}: [sharedfs] path: required when store or membership is 'sharedfs'")
        self.base = str(base)
        #: per node published through this store: one encoder (caches unchanged groups' JSON) and the identity
        #: of the file last written with the document it holds
        self._encoders: dict[str, StatusEncoder] = {}
        self._published: dict[str, tuple[tuple[int, int, int, int], Mapping[str, Any]]] = {}

    def _p(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    def open(self) -> None:
        """Create the layout inside the shared directory, which must exist already: creating a mistyped path or
        an unmounted mount point would quietly give this node a cluster of its own."""
        if not os.path.isdir(self.base):
            raise StoreError(
                f"{self.config.path}: [sharedfs] path: {self.base} is not a directory; mount the shared directory"
                " there (or create it, for a cluster whose nodes all run on this machine)"
            )
        try:
            for sub in ("nodes", "claims", "fence"):
                os.makedirs(self._p(sub), exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.base}: cannot create the shared directory layout: {exc.strerror}") from None

    # -- status
    def publish(self, node: str, status: Mapping[str, Any]) -> None:
        """Write ``node``'s status as compact JSON (see :mod:`omha_core.status_json`: only changed groups are
        re-encoded), and remember which file that made, so that :meth:`statuses` need not read it back."""
        path = self._p("nodes", node, "status.json")
        with _writing(path):
            encoder = self._encoders.get(node)
            if encoder is None:
                encoder = self._encoders[node] = StatusEncoder()
            self._published.pop(node, None)
            text = encoder.encode(status) + "\n"
            try:
                atomic_write(path, text)
            except FileNotFoundError:  # the node's directory: made on the first write, or again if removed
                os.makedirs(self._p("nodes", node), exist_ok=True)
                atomic_write(path, text)
            self._published[node] = (_identity(os.stat(path)), status)

    def statuses(self) -> dict[str, Mapping[str, Any] | Exception]:
        out: dict[str, Mapping[str, Any] | Exception] = {}
        try:
            names = sorted(os.listdir(self._p("nodes")))
        except OSError as exc:
            raise StoreError(f"{self._p('nodes')}: {exc.strerror}") from None
        for node in names:
            path = self._p("nodes", node, "status.json")
            try:
                doc = self._read_status(node, path)
                if not isinstance(doc, dict):
                    raise ValueError("not a JSON object")
                out[node] = doc
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as exc:
                out[node] = StoreError(f"{path}: unreadable status: {exc}")
        return out

    def _read_status(self, node: str, path: str) -> Any:
        """The status in ``path``; without reading or parsing it when it is still the very file this store
        published for ``node`` (same inode, size and mtime, checked on the opened file: open revalidates on NFS,
        a bare stat may not). Another writer (a second daemon as this node) makes a new file by rename, so it is
        always read and the impostor check sees it."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mine = self._published.get(node)
            if mine is not None and mine[0] == _identity(os.fstat(fd)):
                return mine[1]
            return json.loads(_read_fd(fd))
        finally:
            os.close(fd)

    def forget(self, node: str) -> None:
        try:
            os.unlink(self._p("nodes", node, "status.json"))
        except FileNotFoundError:
            pass

    # -- documents
    def documents(self, name: str) -> list[Versioned]:
        """The top-level file, then the other versions nodes adopted, most recently adopted first (none when
        the top-level file is missing: that is a cluster without the document, and the next write starts it)."""
        assert name in STORED_DOCUMENTS
        current = self._read_document(self._p(name))
        if current is None:
            return []
        out = [current]
        for path in sorted(self._copies(name), key=_mtime, reverse=True):
            copy = self._read_document(path)
            if copy is not None and all(copy.version != d.version for d in out):
                out.append(copy)
        return out

    def _read_document(self, path: str) -> Versioned | None:
        try:
            # bytes that are not UTF-8 round-trip: the validation names their line (cltab.decode_text)
            text = _read_bytes(path).decode("utf-8", "surrogateescape")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"{path}: {exc.strerror}") from None
        return Versioned(text=text, version=_version(text), origin=path)

    def _copies(self, name: str) -> list[str]:
        try:
            nodes = os.listdir(self._p("nodes"))
        except FileNotFoundError:
            return []
        return [self._p("nodes", node, name) for node in nodes if not node.startswith(".")]

    def adopt(self, name: str, doc: Versioned) -> None:
        """Keep this node's (``node`` in omha.toml, else the short host name) copy of the version it now runs."""
        path = self._p("nodes", self.config.node, name)
        held = self._read_document(path)
        if held is None or held.version != doc.version:
            with _writing(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write(path, doc.text)

    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        assert name in STORED_DOCUMENTS
        with _writing(self._p(name)), open(self._p(".doclock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.documents(name)
            cur_version = current[0].version if current else ""
            if expect_version is not None and cur_version != expect_version:
                raise ConflictError(
                    f"{self._p(name)} changed since it was read (someone else wrote it); read it again and retry"
                )
            atomic_write(self._p(name), text)
        return _version(text)

    # -- claims
    def claim(self, group: str, node: str, incarnation: str) -> bool:
        path = self._p("claims", f"{group}.json")
        doc = json.dumps({"node": node, "incarnation": incarnation, "time": time.time()})
        with _writing(path):
            if create_exclusive(path, doc):
                return True
        held = self._claim(group)
        return bool(held and held.get("node") == node)

    def _claim(self, group: str) -> Mapping[str, Any] | None:
        try:
            doc = _read_json(self._p("claims", f"{group}.json"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {"node": "?", "incarnation": "?"}
        return doc if isinstance(doc, dict) else {"node": "?", "incarnation": "?"}

    def claims(self) -> dict[str, Mapping[str, Any]]:
        out = {}
        for fname in os.listdir(self._p("claims")):
            if fname.endswith(".json") and not fname.startswith("."):
                held = self._claim(fname[:-5])
                if held is not None:
                    out[fname[:-5]] = held
        return out

    def _drop_claim(self, group: str, holder: str) -> None:
        held = self._claim(group)
        if held is None or held.get("node") != holder:
            return
        path = self._p("claims", f"{group}.json")
        grave = self._p("claims", f".dropped.{group}.{holder}.{os.getpid()}.{time.monotonic_ns()}")
        with _writing(path):
            try:
                os.rename(path, grave)
            except FileNotFoundError:
                return
            doc = self._claim_from(grave)
            if doc is not None and doc.get("node") != holder:  # raced with a new claimer: put theirs back
                create_exclusive(path, json.dumps(doc))
            os.unlink(grave)

    def _claim_from(self, path: str) -> Mapping[str, Any] | None:
        try:
            doc = _read_json(path)
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def release_claim(self, group: str, node: str) -> None:
        self._drop_claim(group, node)

    def break_claim(self, group: str, holder: str) -> None:
        self._drop_claim(group, holder)

    # -- fencing
    def fence_lock(self, node: str, incarnation: str, fencer: str) -> bool:
        path = self._p("fence", f"{node}.{incarnation}.lock")
        with _writing(path):
            if create_exclusive(path, json.dumps({"fencer": fencer, "time": time.time()})):
                return True
        doc = self._claim_from(path)
        return bool(doc and doc.get("fencer") == fencer)

    def fence_lock_holder(self, node: str, key: str) -> str | None:
        doc = self._claim_from(self._p("fence", f"{node}.{key}.lock"))
        return str(doc["fencer"]) if doc and "fencer" in doc else None

    def put_fence_record(self, node: str, record: Mapping[str, Any]) -> None:
        with _writing(self._p("fence", f"{node}.json")):
            atomic_write_json(self._p("fence", f"{node}.json"), dict(record))

    def fence_records(self) -> dict[str, Mapping[str, Any]]:
        out = {}
        for fname in os.listdir(self._p("fence")):
            if fname.endswith(".json") and not fname.startswith("."):
                doc = self._claim_from(self._p("fence", fname))
                if doc is not None:
                    out[fname[:-5]] = doc
        return out


class SharedDirMembership(Membership):
    """Membership by heartbeat alone: every node that has a status directory is a candidate member, and
    the core's liveness tracker decides who is alive from changing sequence numbers."""

    def up_nodes(self) -> set[str] | None:
        """No view of its own: the heartbeats decide."""
        return None
