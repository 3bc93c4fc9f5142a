"""Group claims and fence locks on MFS: one link(2) per up node, in node-number order, all or nothing.

MFS has no lock server and no compare-and-swap, but link(2) into one directory is atomic: of several nodes
linking the same name, exactly one succeeds. A claim is therefore written as ``claims/<group>.json`` into the
directory of **every up node** (this node included), lowest node number first, and holds only if every link
succeeded or found this node's own entry; on the first entry of another holder the claimer removes what it
created and gives up. Claimers that agree on the up set all try the lowest-numbered node's directory first, so
exactly one of them gets past it and wins; claimers whose views differ still share a node (any two views of an
unpartitioned cluster intersect; quorum rules out the partitioned one) where the link decides, and at worst
both give up and retry next cycle. Nothing is lost when a node dies, the holder included: its claims survive in
the other nodes' directories until the core breaks them after fencing.

Trade-off, against the alternatives: a single designated directory (the lowest-numbered up node) costs one
link instead of one per node, but its claims vanish with that node and a newly joined lower node starts with
none; a majority of directories tolerates unwritable ones but needs vote counting and leaves ambiguous
leftovers. Here a claim costs N links, and an up node whose directory cannot be written makes claims fail with
an error (safe, and loud) rather than succeed without it.

Each entry carries a generation ``gen``, greater than any seen for that group. Releasing or breaking a claim
removes its copies from every reachable directory; when some node's directory cannot be reached (its node is
down) or a copy cannot be removed, it first writes a *tombstone* ``claims/.dead.<group>.<holder>.json``
holding the released ``gen`` into every reachable directory. The unreachable directory comes back later with
the old copy, which the tombstone marks dead: whoever meets it removes it. A holder's later claim
has a greater ``gen`` than its tombstone, so old tombstones never kill new claims.

Fence locks (``fence/<node>.<incarnation>.lock``) use the same all-up-nodes link(2) and are never released;
fence records (``fence/<node>.json``) are copied to every up node with a sequence number one above the highest
found, the highest (then the writer's number) winning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from omha_core.errors import StoreError
from omha_core.fsutil import atomic_write_json, create_exclusive
from omha_membership_openmosix.hpc import node_sort_key

log = logging.getLogger(__name__)

CLAIMS = "claims"
FENCE = "fence"
_TOMB_PREFIX = ".dead."
_SAFE = re.compile(r"^[\w][\w.\-]*$")
#: how often a claimer retries a link after removing a dead entry in its way
_RETRIES = 3


@dataclass(frozen=True)
class Entry:
    """One node's copy of a claim."""

    node: str
    incarnation: str
    gen: int


#: an entry file that is not a claim (damaged by hand): held by nobody known, never removed automatically
GARBAGE = Entry("?", "?", -1)


def _read_json(path: str) -> Any:
    """The JSON document at ``path``; None when absent; raises ValueError when garbled, OSError on I/O error."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


def _entry(doc: Any) -> Entry:
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("node"), str)
        and isinstance(doc.get("incarnation"), str)
        and isinstance(doc.get("gen"), int)
        and not isinstance(doc.get("gen"), bool)
    ):
        return Entry(doc["node"], doc["incarnation"], doc["gen"])
    return GARBAGE


def read_entry(path: str) -> Entry | None:
    """The claim entry at ``path``: None when absent, :data:`GARBAGE` when unreadable as a claim."""
    try:
        doc = _read_json(path)
    except (OSError, ValueError):
        return GARBAGE
    return None if doc is None else _entry(doc)


def safe_name(value: str) -> str:
    """``value`` when usable in a file name, else a digest of it."""
    return value if _SAFE.match(value) and len(value) <= 100 else hashlib.sha256(value.encode()).hexdigest()[:24]


def remove_if(path: str, condemned: Callable[[str], bool]) -> bool:
    """Remove the file at ``path`` if ``condemned(its text)``; a file that replaced it meanwhile is put back.

    The file is first renamed to a unique name, so that what is judged is exactly what is removed.
    Returns True when a condemned file was removed.
    """
    grave = os.path.join(os.path.dirname(path), f".grave.{os.getpid()}.{time.monotonic_ns()}")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return False
    try:
        with open(grave, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if condemned(text):
            return True
        create_exclusive(path, text)  # not what we meant to remove (raced with a new claimer): put it back
        return False
    finally:
        os.unlink(grave)


def _entry_text_is(text: str, test: Callable[[Entry], bool]) -> bool:
    try:
        return test(_entry(json.loads(text)))
    except ValueError:
        return False


def _text_holds(target: Entry) -> Callable[[str], bool]:
    """A predicate for :func:`remove_if`: the file holds exactly ``target``."""
    return lambda text: _entry_text_is(text, lambda e: e == target)


class Replicas:
    """Claims, fence locks and fence records replicated over the nodes' directories.

    :param node_dir: maps a node to its omha directory.
    """

    def __init__(self, node_dir: Callable[[str], str], node_root: Callable[[str], str]) -> None:
        self.node_dir = node_dir
        self.node_root = node_root

    def reachable(self, node: str) -> bool:
        """True when ``node``'s MFS root can be read (on MFS, a down node's cannot)."""
        return os.path.isdir(self.node_root(node))

    def _dir(self, node: str, sub: str) -> str:
        return os.path.join(self.node_dir(node), sub)

    @staticmethod
    def _ordered(nodes: Iterable[str]) -> list[str]:
        return sorted(set(nodes), key=node_sort_key)

    # -- reading ----------------------------------------------------------------------------------------
    def _listing(self, node: str, sub: str) -> list[str] | None:
        try:
            return os.listdir(self._dir(node, sub))
        except OSError:
            return None  # unreachable (node down on MFS) or never used

    def tombstones(self, nodes: Iterable[str], group: str | None = None) -> dict[tuple[str, str], int]:
        """(group, holder) -> the highest released generation, over the reachable directories of ``nodes``."""
        out: dict[tuple[str, str], int] = {}
        for n in self._ordered(nodes):
            for fname in self._listing(n, CLAIMS) or ():
                if not (fname.startswith(_TOMB_PREFIX) and fname.endswith(".json")):
                    continue
                try:
                    doc = _read_json(os.path.join(self._dir(n, CLAIMS), fname))
                except (OSError, ValueError):
                    continue
                if not isinstance(doc, dict):
                    continue
                g, holder, gen = doc.get("group"), doc.get("node"), doc.get("gen")
                if not (isinstance(g, str) and isinstance(holder, str) and isinstance(gen, int)):
                    continue
                if group is not None and g != group:
                    continue
                out[(g, holder)] = max(gen, out.get((g, holder), gen))
        return out

    def entries(self, nodes: Iterable[str], group: str | None = None) -> dict[str, dict[str, Entry]]:
        """group -> {node whose directory holds it -> entry}, over the reachable directories of ``nodes``."""
        out: dict[str, dict[str, Entry]] = {}
        for n in self._ordered(nodes):
            names = self._listing(n, CLAIMS)
            if names is None:
                continue
            wanted = [f"{group}.json"] if group is not None else names
            for fname in wanted:
                if fname.startswith(".") or not fname.endswith(".json"):
                    continue
                entry = read_entry(os.path.join(self._dir(n, CLAIMS), fname))
                if entry is not None:
                    out.setdefault(fname[:-5], {})[n] = entry
        return out

    @staticmethod
    def _dead(group: str, entry: Entry, tombs: Mapping[tuple[str, str], int]) -> bool:
        return entry is not GARBAGE and entry.gen <= tombs.get((group, entry.node), -1)

    @staticmethod
    def _resolve(live: Mapping[str, Entry]) -> Entry | None:
        """The holder among live copies: the claim found in most directories, then the older generation."""
        counts: dict[Entry, int] = {}
        for entry in live.values():
            counts[entry] = counts.get(entry, 0) + 1
        if not counts:
            return None
        proper = [e for e in counts if e is not GARBAGE] or [GARBAGE]
        return min(proper, key=lambda e: (-counts[e], e.gen, node_sort_key(e.node)))

    def holders(self, nodes: Iterable[str]) -> dict[str, Entry]:
        """group -> the live claim, over the reachable directories of ``nodes``."""
        nodes = self._ordered(nodes)
        tombs = self.tombstones(nodes)
        out = {}
        for group, copies in self.entries(nodes).items():
            live = {n: e for n, e in copies.items() if not self._dead(group, e, tombs)}
            holder = self._resolve(live)
            if holder is not None:
                out[group] = holder
        return out

    # -- claims -----------------------------------------------------------------------------------------
    def claim(self, group: str, node: str, incarnation: str, attempt: Iterable[str], scan: Iterable[str]) -> bool:
        """Claim ``group`` for ``node`` in the directory of every node in ``attempt``; see the module doc."""
        attempt, scan = self._ordered(attempt), self._ordered(set(scan) | set(attempt))
        tombs = self.tombstones(scan, group)
        copies = self.entries(scan, group).get(group, {})
        live = {n: e for n, e in copies.items() if not self._dead(group, e, tombs)}
        holder = self._resolve(live)
        if holder is not None and holder.node != node:
            return False
        if holder is not None:  # already ours: make sure every up node has a copy (nodes joined since)
            self._link_all(group, holder, attempt, tombs, heal=True)
            return True
        gens = [e.gen for e in copies.values()] + [g for (grp, _h), g in tombs.items() if grp == group]
        entry = Entry(node, incarnation, max(gens, default=0) + 1)
        return self._link_all(group, entry, attempt, tombs, heal=False)

    def _link_all(
        self, group: str, entry: Entry, attempt: list[str], tombs: Mapping[tuple[str, str], int], heal: bool
    ) -> bool:
        text = json.dumps({"node": entry.node, "incarnation": entry.incarnation, "gen": entry.gen})
        created: list[str] = []
        for n in attempt:
            directory = self._dir(n, CLAIMS)
            path = os.path.join(directory, f"{group}.json")
            try:
                os.makedirs(directory, exist_ok=True)
                ok = self._link_one(group, path, text, entry, tombs)
            except OSError as exc:
                if heal:
                    log.debug("%s: cannot copy claim (%s)", path, exc.strerror)
                    continue
                self._rollback(group, entry, created, attempt)
                raise StoreError(f"{path}: cannot write the claim of {group!r} on node {n}: {exc.strerror}") from None
            if ok is None:
                created.append(path)
            elif not ok and not heal:
                self._rollback(group, entry, created, attempt)
                return False
        return True

    def _link_one(
        self, group: str, path: str, text: str, entry: Entry, tombs: Mapping[tuple[str, str], int]
    ) -> bool | None:
        """None when this call created the entry, True when ``entry.node`` already holds it, False otherwise."""
        for _ in range(_RETRIES):
            if create_exclusive(path, text):
                return None
            found = read_entry(path)
            if found is None:
                continue  # removed between our link and our read: try again
            if found is not GARBAGE and found.node == entry.node and not self._dead(group, found, tombs):
                return True
            if not self._dead(group, found, tombs):
                return False
            remove_if(path, _text_holds(found))
        return False

    def _rollback(self, group: str, entry: Entry, created: list[str], attempt: list[str]) -> None:
        stuck = False
        for path in created:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                stuck = True
        if stuck:  # a copy we could not take back must not block others when its directory returns
            self._bury(group, entry.node, entry.gen, attempt)

    def _bury(self, group: str, holder: str, gen: int, nodes: Iterable[str]) -> None:
        doc = {"group": group, "node": holder, "gen": gen}
        for n in self._ordered(nodes):
            path = os.path.join(self._dir(n, CLAIMS), f"{_TOMB_PREFIX}{group}.{safe_name(holder)}.json")
            try:
                old = _read_json(path)
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and isinstance(old.get("gen"), int) and old["gen"] >= gen:
                continue
            try:
                atomic_write_json(path, doc)  # never creates directories: an unreachable node stays untouched
            except OSError as exc:
                log.debug("%s: cannot write tombstone (%s)", path, exc.strerror)

    def drop(self, group: str, holder: str, scan: Iterable[str]) -> None:
        """Release (or break) ``holder``'s claim on ``group`` in every reachable directory of ``scan``."""
        scan = self._ordered(scan)
        copies = self.entries(scan, group).get(group, {})
        gens = [e.gen for e in copies.values() if e is not GARBAGE and e.node == holder]
        if not gens:
            return
        top = max(gens)
        # a node whose MFS directory cannot be reached may hold a copy we cannot remove: mark it dead first
        buried = not all(self.reachable(n) for n in scan)
        if buried:
            self._bury(group, holder, top, scan)
        for n in scan:
            path = os.path.join(self._dir(n, CLAIMS), f"{group}.json")
            try:
                remove_if(path, lambda t: _entry_text_is(t, lambda e: e.node == holder and e.gen <= top))
            except OSError as exc:
                log.debug("%s: cannot remove claim (%s); a tombstone marks it dead", path, exc.strerror)
                if not buried:
                    self._bury(group, holder, top, scan)
                    buried = True

    # -- fencing ----------------------------------------------------------------------------------------
    def fence_lock(self, node: str, incarnation: str, fencer: str, attempt: Iterable[str]) -> bool:
        """Become the one fencer of ``node``'s ``incarnation``: link a lock into every node of ``attempt``."""
        text = json.dumps({"fencer": fencer, "node": node, "incarnation": incarnation})
        fname = f"{safe_name(node)}.{safe_name(incarnation)}.lock"
        created: list[str] = []
        for n in self._ordered(attempt):
            directory = self._dir(n, FENCE)
            path = os.path.join(directory, fname)
            try:
                os.makedirs(directory, exist_ok=True)
                if create_exclusive(path, text):
                    created.append(path)
                    continue
                doc = _read_json(path)
            except ValueError:
                doc = None
            except OSError as exc:
                self._unlink_all(created)
                raise StoreError(f"{path}: cannot write the fence lock of node {node}: {exc.strerror}") from None
            if not (isinstance(doc, dict) and doc.get("fencer") == fencer):
                self._unlink_all(created)
                return False
        return True

    def fence_lock_holder(self, node: str, key: str, nodes: Iterable[str]) -> str | None:
        """Who holds the fence lock ``(node, key)``: the fencer named by most reachable copies, or None."""
        fname = f"{safe_name(node)}.{safe_name(key)}.lock"
        counts: dict[str, int] = {}
        for n in self._ordered(nodes):
            try:
                doc = _read_json(os.path.join(self._dir(n, FENCE), fname))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("fencer"), str):
                counts[doc["fencer"]] = counts.get(doc["fencer"], 0) + 1
        if not counts:
            return None
        return min(counts, key=lambda f: (-counts[f], node_sort_key(f)))

    @staticmethod
    def _unlink_all(paths: list[str]) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass

    def _fence_docs(self, nodes: Iterable[str]) -> dict[str, tuple[int, tuple[int, str], Mapping[str, Any]]]:
        best: dict[str, tuple[int, tuple[int, str], Mapping[str, Any]]] = {}
        for n in self._ordered(nodes):
            for fname in self._listing(n, FENCE) or ():
                if fname.startswith(".") or not fname.endswith(".json"):
                    continue
                try:
                    doc = _read_json(os.path.join(self._dir(n, FENCE), fname))
                except (OSError, ValueError):
                    continue
                if not isinstance(doc, dict) or not isinstance(doc.get("record"), dict):
                    continue
                seq, writer = doc.get("seq"), doc.get("writer")
                if not isinstance(seq, int) or not isinstance(writer, str):
                    continue
                key = (seq, node_sort_key(writer))
                target = fname[:-5]
                if target not in best or key > best[target][:2]:
                    best[target] = (seq, key[1], doc["record"])
        return best

    def put_fence_record(self, node: str, record: Mapping[str, Any], writer: str, nodes: Iterable[str]) -> None:
        """Copy the fence record of ``node`` into every directory of ``nodes`` (``writer``'s own must work)."""
        nodes = self._ordered(nodes)
        seq = self._fence_docs(nodes).get(node, (0,))[0] + 1
        doc = {"seq": seq, "writer": writer, "record": dict(record)}
        for n in nodes:
            directory = self._dir(n, FENCE)
            try:
                os.makedirs(directory, exist_ok=True)
                atomic_write_json(os.path.join(directory, f"{safe_name(node)}.json"), doc)
            except OSError as exc:
                if n == writer:
                    raise StoreError(f"{directory}: cannot write the fence record of {node}: {exc.strerror}") from None
                log.warning("%s: cannot copy the fence record of %s (%s)", directory, node, exc.strerror)

    def fence_records(self, nodes: Iterable[str]) -> dict[str, Mapping[str, Any]]:
        """node -> its latest fence record, over the reachable directories of ``nodes``."""
        return {target: rec for target, (_s, _w, rec) in self._fence_docs(nodes).items()}
