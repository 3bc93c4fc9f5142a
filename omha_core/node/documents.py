"""Following ``cltab`` and ``hactl`` in the store: adopt the newest valid version, refuse invalid ones.

An invalid new version is refused with its errors (published in this node's status) and the last good one keeps
running; nothing is adopted before a first valid version exists. Reading and checking run in a worker thread
(store I/O, plugins' checks); applying runs on the event loop, because reloading the init starts and stops
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial

import pluggy

from omha_core.backends import DOCUMENTS, Store, Versioned, newest_valid
from omha_core.cltab import Cltab
from omha_core.config import Config
from omha_core.errors import StoreError
from omha_core.validate import check_document

log = logging.getLogger("omha.daemon")

#: a document's parsed form: cltab, or hactl's group -> level
Parsed = Cltab | dict[str, str]
#: per document: the newest valid version not adopted yet with its parsed form (None when the one adopted is
#: still the newest valid), the errors of newer invalid versions, and whether the one adopted is the newest
Found = tuple[tuple[Versioned, Parsed] | None, list[str], bool]


class Documents:
    """The cltab and hactl this node runs, their versions, and the errors of the versions it refused.

    :param on_adopt: called with each newly adopted document's parsed form, after it became current (the daemon
        forgets its failed tests and reloads its init).
    """

    def __init__(
        self, store: Store, pm: pluggy.PluginManager, config: Config, on_adopt: Callable[[Parsed], None]
    ) -> None:
        self.store, self.pm, self.config, self.on_adopt = store, pm, config, on_adopt
        self.cltab = Cltab(filename="cltab")
        self.hactl: dict[str, str] = {}
        #: document -> the version adopted (None: none yet)
        self.versions: dict[str, str | None] = dict.fromkeys(DOCUMENTS)
        #: document -> the errors of the newer versions refused
        self.errors: dict[str, list[str]] = {}

    async def adopt(self) -> None:
        """Adopt the newest valid cltab and hactl; refuse invalid versions, keeping the last good one."""
        found = await asyncio.to_thread(self.newest_valid)
        for name, (chosen, errors, current_is_newest) in found.items():
            if chosen is not None:
                doc, parsed = chosen
                self._apply(parsed)
                self.versions[name] = doc.version
                with contextlib.suppress(Exception):  # only a record of what runs: a failure costs nothing now
                    await asyncio.to_thread(self.store.adopt, name, doc)
                log.info("adopted %s version %s from %s", name, doc.version, doc.origin or "store")
            if errors:
                if self.errors.get(name) != errors:
                    kept = "the last good version keeps running" if self.versions[name] else "nothing adopted yet"
                    log.error("refused invalid %s (%s):\n  %s", name, kept, "\n  ".join(errors))
                self.errors[name] = errors
            elif current_is_newest or chosen is not None:
                self.errors.pop(name, None)

    def newest_valid(self) -> dict[str, Found]:
        """Per document (in a worker thread), what :data:`Found` says: versions newer than the one adopted are
        checked newest first, down to the first valid one."""
        out: dict[str, Found] = {}
        for name in DOCUMENTS:
            try:
                candidates = self.store.documents(name)
            except Exception as exc:  # a store failure, or a backend plugin's bug: the last good version runs on
                out[name] = (None, [str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"], False)
                continue
            chosen, errors = newest_valid(
                name, candidates, partial(self._check, name), until=self.versions[name]
            )
            newest = bool(candidates) and candidates[0].version == self.versions[name]
            out[name] = (chosen, errors, newest)
        return out

    def _check(self, name: str, doc: Versioned) -> Parsed:
        return check_document(name, doc.text, doc.origin or name, self.pm, self.config)

    def _apply(self, parsed: Parsed) -> None:
        if isinstance(parsed, Cltab):
            self.cltab = parsed
        else:
            self.hactl = parsed
        self.on_adopt(parsed)
