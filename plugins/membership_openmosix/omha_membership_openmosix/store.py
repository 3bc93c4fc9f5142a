"""The ``openmosix`` store: OpenMosix::HA's MFS layout, every node's files in its own directory.

Each node writes only into its own ``<mfsbase>/<node>/<varpath>/`` (status, hastat, its copies of the
documents), except claims, fence locks and fence records, which are replicated into every up node's
directory (see :mod:`.claims`). Reads cover the nodes the kernel sees up, plus every node directory that can be
read, so that the status of a node that just went down is still known to the core (on real MFS a down node's
directory is simply unreachable).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from omha_core.backends import STORED_DOCUMENTS, Store, Versioned
from omha_core.errors import ConflictError, StoreError
from omha_core.fsutil import atomic_write_json
from omha_membership_openmosix import hastat, hpc, versions
from omha_membership_openmosix.claims import Replicas
from omha_membership_openmosix.layout import Layout, Settings, check_node_name, local_node

if TYPE_CHECKING:
    from omha_core.config import Config

log = logging.getLogger(__name__)

CLSTAT = "clstat"
HASTAT = "hastat"
DOCLOCK = ".doclock"
#: errors that mean "this node's directory cannot be reached" rather than "this file is broken"
_UNREACHABLE = (errno.ENOENT, errno.ENOTDIR, errno.EIO, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ESTALE)


class OpenMosixStore(Store):
    """Statuses, documents, claims and fencing on an openMosix MFS tree."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.settings = Settings.from_config(config)
        self.layout = Layout(self.settings)
        self.replicas = Replicas(self.layout.node_dir, self.layout.node_root)
        #: how long each node's status has stayed unchanged, observed on every read: feeds ``hastat`` and the
        #: openmosix membership's ``timeout``
        self.silence = hastat.Silence()
        self._me: str | None = None
        #: the statuses and kernel up set of the last read, which hastat is built from when this node's daemon
        #: publishes (its status then carries its judgement of that same read)
        self._last: tuple[dict[str, Mapping[str, Any] | Exception], set[str]] | None = None

    # -- who and where ----------------------------------------------------------------------------------
    @property
    def me(self) -> str:
        """This node's number (``node`` in omha.toml, else the whois command's answer)."""
        if self._me is None:
            self._me = local_node(self.config, self.settings)
        return self._me

    def _up(self) -> set[str]:
        return hpc.up_nodes(self.settings.hpcbase)

    def _nodes(self) -> tuple[list[str], set[str]]:
        """Every node to read (known to the kernel, present on MFS, or this one), and the up ones."""
        table = hpc.node_table(self.settings.hpcbase)
        up = {n for n, is_up in table.items() if is_up}
        return sorted(set(table) | self.layout.mfs_nodes() | {self.me}, key=hpc.node_sort_key), up

    def _attempt(self) -> list[str]:
        """Where claims and fence locks are written: every up node, and this one."""
        return sorted(self._up() | {self.me}, key=hpc.node_sort_key)

    def _scan(self) -> list[str]:
        """Where they are read: every node known to the kernel or present on MFS, and this one."""
        return self._nodes()[0]

    def open(self) -> None:
        base = self.settings.mfsbase
        if not os.path.isdir(base):
            raise StoreError(f"[openmosix] mfsbase {base}: not a directory (is MFS mounted? is mfsbase right?)")
        mine = self.layout.node_dir(self.me)
        try:
            for sub in ("claims", "fence"):
                os.makedirs(os.path.join(mine, sub), exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{mine}: cannot create this node's omha directory: {exc.strerror}") from None

    # -- node status ------------------------------------------------------------------------------------
    def publish(self, node: str, status: Mapping[str, Any]) -> None:
        """Write ``node``'s ``clstat``; for this node (its daemon publishing), then rewrite ``hastat`` too.

        hastat is written here rather than when statuses are read because the daemon's status carries its
        judgement (which nodes it counts alive, its quorum) of the statuses it read this cycle; a CLI, which
        only reads, never replaces the daemon's view.
        """
        check_node_name(node, "[openmosix] publish")
        directory = self.layout.node_dir(node)
        try:
            os.makedirs(directory, exist_ok=True)
            atomic_write_json(os.path.join(directory, CLSTAT), dict(status))
        except OSError as exc:
            raise StoreError(
                f"{directory}/{CLSTAT}: cannot publish the status of node {node}: {exc.strerror}"
            ) from None
        if node == self.me:
            statuses, up = self._last if self._last is not None else self._read_all()
            self.write_hastat({**statuses, node: dict(status)}, up)

    def _read_status(self, node: str, up: bool) -> Mapping[str, Any] | Exception | None:
        path = self.layout.path(node, CLSTAT)
        try:
            with open(path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not up and exc.errno in _UNREACHABLE:
                return None  # a down node's MFS directory: nothing to say about it
            return StoreError(f"{path}: unreadable status: {exc.strerror}")
        except ValueError as exc:
            return StoreError(f"{path}: status is not valid JSON: {exc}")
        if not isinstance(doc, dict):
            return StoreError(f"{path}: status is not a JSON object")
        return doc

    def _read_all(self) -> tuple[dict[str, Mapping[str, Any] | Exception], set[str]]:
        """Every readable node's status and the kernel's up set, each node's silence observed."""
        nodes, up = self._nodes()
        out: dict[str, Mapping[str, Any] | Exception] = {}
        for node in nodes:
            doc = self._read_status(node, node in up)
            if doc is not None:
                out[node] = doc
        for node in set(nodes) | up:
            self.silence.observe(node, hastat.token(out.get(node)))
        self._last = (out, up)
        return out, up

    def statuses(self) -> dict[str, Mapping[str, Any] | Exception]:
        """Every readable node's status (the up nodes', and any other directory that can be read)."""
        return dict(self._read_all()[0])

    def stale_nodes(self, nodes: set[str]) -> set[str]:
        """The nodes among ``nodes``, this one excepted, whose status stayed unchanged over the reads of the last
        ``[openmosix] timeout`` seconds (the original's ``timeout``; see :mod:`.hastat`)."""
        return self.silence.stale(nodes - {self.me}, self.settings.timeout)

    def write_hastat(self, statuses: Mapping[str, Mapping[str, Any] | Exception], up: set[str]) -> dict[str, Any]:
        """Write the consolidated view into this node's directory (atomically); return it.

        ``statuses[this node]`` is the status this node's daemon is publishing, whose ``view`` is its judgement.
        """
        view = hastat.build(self.me, statuses, up, self.silence, self.settings.timeout)
        path = self.layout.path(self.me, HASTAT)
        try:
            atomic_write_json(path, view)
        except OSError as exc:  # monitoring output must not stop the HA loop
            log.warning("%s: cannot write hastat: %s", path, exc.strerror)
        return view

    def forget(self, node: str) -> None:
        try:
            os.unlink(self.layout.path(node, CLSTAT))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"{self.layout.path(node, CLSTAT)}: cannot remove: {exc.strerror}") from None

    # -- cluster documents ------------------------------------------------------------------------------
    def _copies(self, name: str) -> list[versions.Copy]:
        if name not in STORED_DOCUMENTS:
            raise StoreError(f"unknown cluster document {name!r} (known: {', '.join(STORED_DOCUMENTS)})")
        copies = []
        for node in sorted(self._up() | {self.me}, key=hpc.node_sort_key):
            try:
                copy = versions.read_copy(node, self.layout.node_dir(node), name)
            except OSError as exc:
                if node == self.me:
                    raise StoreError(f"{self.layout.path(node, name)}: {exc.strerror}") from None
                log.debug("%s: unreadable copy skipped (%s)", self.layout.path(node, name), exc.strerror)
                continue
            if copy is not None:
                copies.append(copy)
        return copies

    def documents(self, name: str) -> list[Versioned]:
        """The up nodes' copies of ``name``, newest first, one per version (see :mod:`.versions`)."""
        return [
            Versioned(text=c.text, version=c.token, order=c.counter, origin=c.path)
            for c in versions.newest_first(self._copies(name))
        ]

    @contextmanager
    def _doclock(self) -> Iterator[None]:
        directory = self.layout.node_dir(self.me)
        try:
            os.makedirs(directory, exist_ok=True)
            fh = open(os.path.join(directory, DOCLOCK), "a")  # noqa: SIM115 - held for the with-block
        except OSError as exc:
            raise StoreError(f"{directory}: cannot lock this node's documents: {exc.strerror}") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def adopt(self, name: str, doc: Versioned) -> None:
        """Copy the version the core adopted into this node's directory (text, then version file).

        Refuses a ``doc`` whose text does not match its version. Leaves alone a local copy that is newer
        than ``doc`` (edited by hand since the core read it): the next cycle sees it.
        """
        if name not in STORED_DOCUMENTS:
            raise StoreError(f"unknown cluster document {name!r} (known: {', '.join(STORED_DOCUMENTS)})")
        try:
            counter, author, prefix = versions.parse_token(doc.version)
        except ValueError as exc:
            raise StoreError(f"cannot adopt {name} from {doc.origin}: {exc}") from None
        sha = versions.digest(versions.encode(doc.text))
        if not sha.startswith(prefix):
            raise StoreError(
                f"refusing to adopt {name} from {doc.origin}: its text does not match version {doc.version}"
            )
        directory = self.layout.node_dir(self.me)
        with self._doclock():
            try:
                local = versions.read_copy(self.me, directory, name)
                if local is not None and local.token == doc.version:
                    if local.edited:  # our own hand edit, adopted: give it its version file
                        versions.write_version(directory, name, local, counter, author)
                    return
                # the adopted version as it ranks now (a hand edit ranks by its mtime too)
                ranks = [c.rank for c in self._copies(name) if c.token == doc.version]
                wanted = max(ranks, default=versions.Copy(author, "", doc.text, counter, author, sha).rank)
                if local is not None and local.rank > wanted:
                    return  # edited here since the core read it: the next cycle judges that copy
                versions.write_copy(self.me, directory, name, doc.text, counter, author)
            except OSError as exc:
                raise StoreError(f"{directory}/{name}: cannot adopt version {doc.version}: {exc.strerror}") from None

    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        """Write a new version into this node's directory, numbered above every up node's copy.

        ``expect_version`` is checked against the newest copy under this node's document lock; two nodes
        writing at the same moment both succeed and the version order picks one for everybody.
        """
        with self._doclock():
            copies = self._copies(name)
            ordered = versions.newest_first(copies)
            current = ordered[0].token if ordered else ""
            if expect_version is not None and expect_version != current:
                raise ConflictError(
                    f"{name} changed since it was read (now version {current or 'none'}, "
                    f"expected {expect_version or 'none'}); read it again and retry"
                )
            counter = max((c.counter for c in copies), default=0) + 1
            try:
                written = versions.write_copy(self.me, self.layout.node_dir(self.me), name, text, counter, self.me)
            except OSError as exc:
                raise StoreError(f"{self.layout.path(self.me, name)}: cannot write: {exc.strerror}") from None
        return written.token

    # -- claims -----------------------------------------------------------------------------------------
    def claim(self, group: str, node: str, incarnation: str) -> bool:
        return self.replicas.claim(group, node, incarnation, self._attempt(), self._scan())

    def claims(self) -> dict[str, Mapping[str, Any]]:
        return {
            group: {"node": e.node, "incarnation": e.incarnation, "gen": e.gen}
            for group, e in self.replicas.holders(self._scan()).items()
        }

    def release_claim(self, group: str, node: str) -> None:
        self.replicas.drop(group, node, self._scan())

    def break_claim(self, group: str, holder: str) -> None:
        self.replicas.drop(group, holder, self._scan())

    # -- fencing ----------------------------------------------------------------------------------------
    def fence_lock(self, node: str, incarnation: str, fencer: str) -> bool:
        return self.replicas.fence_lock(node, incarnation, fencer, self._attempt())

    def fence_lock_holder(self, node: str, key: str) -> str | None:
        return self.replicas.fence_lock_holder(node, key, self._scan())

    def put_fence_record(self, node: str, record: Mapping[str, Any]) -> None:
        self.replicas.put_fence_record(node, record, self.me, self._attempt())

    def fence_records(self) -> dict[str, Mapping[str, Any]]:
        return self.replicas.fence_records(self._scan())
