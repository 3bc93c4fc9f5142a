"""Who fences: the fence lock per lost incarnation, and its hand-over when the fencer itself is lost."""

from __future__ import annotations

from pathlib import Path

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.config import validate_config
from omha_core.fencing import Fencer
from omha_core.plugins import get_plugin_manager


def fencer(tmp_path: Path, me: str, store: SharedDirStore | None = None) -> Fencer:
    cfg = validate_config({"node": me, "sharedfs": {"path": str(tmp_path)}})
    if store is None:
        store = SharedDirStore(cfg)
        store.open()
    return Fencer(cfg, get_plugin_manager(), store, me)


def test_one_fencer_and_hand_over_when_it_is_lost(tmp_path: Path) -> None:
    n1, n2 = fencer(tmp_path, "n1"), fencer(tmp_path, "n2")
    assert n1._lock("n3", "inc1", {"n1", "n2"}) == "n1"
    assert n2._lock("n3", "inc1", {"n1", "n2"}) == "n1"  # n1 is alive: n2 waits for its record
    assert n2._lock("n3", "inc1", {"n2"}) == "n2"  # n1 was lost too: n2 takes over


def test_store_that_cannot_name_the_holder_never_hands_over(tmp_path: Path) -> None:
    class Mute(SharedDirStore):
        def fence_lock_holder(self, node: str, key: str) -> str | None:
            return None

    store = Mute(validate_config({"sharedfs": {"path": str(tmp_path)}}))
    store.open()
    n1, n2 = fencer(tmp_path, "n1", store), fencer(tmp_path, "n2", store)
    assert n1._lock("n3", "inc1", {"n1", "n2"}) == "n1"
    assert n2._lock("n3", "inc1", {"n2"}) == "?"  # unknown holder: wait rather than fence twice
