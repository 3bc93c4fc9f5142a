"""The builtin shared-directory store: atomic claims across processes, compare-and-swap documents, fence locks,
and tolerance of garbage."""

from __future__ import annotations

import hashlib
import multiprocessing
import subprocess
from pathlib import Path

import pytest

from omha_core.builtin.sharedfs import SharedDirStore
from omha_core.cli_cluster import tell
from omha_core.config import validate_config
from omha_core.errors import ConflictError, StoreError


def store(path: Path) -> SharedDirStore:
    s = SharedDirStore(validate_config({"sharedfs": {"path": str(path)}}))
    s.open()
    return s


def _race(args: tuple[str, str, int]) -> tuple[str, bool]:
    path, node, _ = args
    return node, store(Path(path)).claim("web", node, "inc")


def test_claim_is_exclusive_across_processes(tmp_path: Path) -> None:
    for round_ in range(5):
        base = tmp_path / f"r{round_}"
        base.mkdir()
        with multiprocessing.get_context("fork").Pool(8) as pool:
            results = pool.map(_race, [(str(base), f"n{i}", round_) for i in range(16)])
        winners = [n for n, won in results if won]
        assert len(winners) == 1, results
        assert store(base).claims()["web"]["node"] == winners[0]


def test_missing_shared_directory_is_refused_not_created(tmp_path: Path) -> None:
    """A mistyped path or an unmounted mount point must not quietly become a cluster of one."""
    missing = tmp_path / "not-mounted"
    with pytest.raises(StoreError, match=r"\[sharedfs\] path: .*not-mounted is not a directory; mount"):
        store(missing)
    assert not missing.exists()


def test_claim_release_and_break(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.claim("web", "n1", "a") and s.claim("web", "n1", "a")  # idempotent for the holder
    assert not s.claim("web", "n2", "b")
    s.release_claim("web", "n2")  # not the holder: no-op
    assert s.claims()["web"]["node"] == "n1"
    s.break_claim("web", "n1")
    assert "web" not in s.claims()
    assert s.claim("web", "n2", "b")


def test_documents_compare_and_swap(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.documents("hactl") == []
    v1 = s.put_document("hactl", "web run\n", None)
    assert s.documents("hactl")[0].version == v1
    v2 = s.put_document("hactl", "web 2\n", v1)
    with pytest.raises(ConflictError, match="changed since it was read"):
        s.put_document("hactl", "web 3\n", v1)  # a stale writer is refused, nothing lost
    assert s.documents("hactl")[0].text == "web 2\n" and s.documents("hactl")[0].version == v2


def test_expect_absent_writes_a_first_version_only_once(tmp_path: Path) -> None:
    s = store(tmp_path)
    v1 = s.put_document("hactl", "web run\n", "")
    with pytest.raises(ConflictError, match="changed since it was read"):
        s.put_document("hactl", "db run\n", "")  # a second "first write" is refused, not merged away
    assert [(d.text, d.version) for d in s.documents("hactl")] == [("web run\n", v1)]


class _RacedStore(SharedDirStore):
    """A store on which another operator's first hactl lands between this writer's read and its write."""

    raced = False

    def put_document(self, name: str, text: str, expect_version: str | None) -> str:
        if not self.raced:
            self.raced = True
            SharedDirStore.put_document(self, "hactl", "other run\n", "")
        return super().put_document(name, text, expect_version)


def test_tell_on_a_cluster_without_hactl_keeps_a_concurrent_first_tell(tmp_path: Path) -> None:
    s = _RacedStore(validate_config({"sharedfs": {"path": str(tmp_path)}}))
    s.open()
    tell(s, "web", "run")
    assert sorted(s.documents("hactl")[0].text.splitlines()) == ["other run", "web run"]


def test_fence_lock_one_fencer_per_incarnation(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.fence_lock("n3", "inc1", "n1")
    assert not s.fence_lock("n3", "inc1", "n2")
    assert s.fence_lock_holder("n3", "inc1") == "n1"
    assert s.fence_lock("n3", "inc2", "n2")  # a new incarnation is a new fencing
    s.put_fence_record("n3", {"incarnation": "inc2", "ok": True})
    assert s.fence_records()["n3"]["ok"] is True


def test_garbage_status_is_reported_not_raised(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.publish("n1", {"node": "n1", "seq": 1, "incarnation": "x"})
    (tmp_path / "nodes" / "bad").mkdir()
    (tmp_path / "nodes" / "bad" / "status.json").write_bytes(b"\xff\xfe[1,")
    (tmp_path / "nodes" / "list").mkdir()
    (tmp_path / "nodes" / "list" / "status.json").write_text("[1, 2]")
    got = s.statuses()
    assert got["n1"]["seq"] == 1
    assert isinstance(got["bad"], StoreError) and isinstance(got["list"], StoreError)
    assert "not a JSON object" in str(got["list"])


def test_missing_path_is_a_clear_error() -> None:
    from omha_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[sharedfs\] path: required"):
        SharedDirStore(validate_config({}))


def test_documents_list_the_file_then_the_versions_nodes_adopted(tmp_path: Path) -> None:
    nodes = {n: SharedDirStore(validate_config({"node": n, "sharedfs": {"path": str(tmp_path)}})) for n in "abc"}
    s = nodes["a"]
    s.open()
    assert s.documents("hactl") == []
    s.put_document("hactl", "web 1\n", "")
    nodes["a"].adopt("hactl", s.documents("hactl")[0])
    s.put_document("hactl", "web 2\n", None)
    nodes["b"].adopt("hactl", s.documents("hactl")[0])
    nodes["c"].adopt("hactl", s.documents("hactl")[0])  # the same version twice is listed once
    s.put_document("hactl", "web r/n\n", None)  # invalid, written by hand
    assert [d.text for d in s.documents("hactl")] == ["web r/n\n", "web 2\n", "web 1\n"]
    assert s.documents("hactl")[2].origin == str(tmp_path / "nodes" / "a" / "hactl")
    (tmp_path / "hactl").unlink()  # no document at all: copies are not resurrected
    assert s.documents("hactl") == []


def test_a_read_only_shared_directory_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    """A node whose view of the shared directory turned read-only (found by the chaos campaign, ``store_ro``)
    must get a StoreError naming the file and the reason, which the daemon reports as a store failure, not a raw
    OSError logged with a traceback every heartbeat under "cycle failed"."""
    s = store(tmp_path)
    s.publish("n1", {"seq": 1})
    subprocess.run(["mount", "--bind", str(tmp_path), str(tmp_path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(tmp_path)], check=True)
        with pytest.raises(StoreError, match=r"nodes/n1/status.json: .*Read-only file system"):
            s.publish("n1", {"seq": 2})
        with pytest.raises(StoreError, match=r"claims/web.json: .*Read-only file system"):
            s.claim("web", "n1", "inc")
        with pytest.raises(StoreError, match=r"fence/n2.json: .*Read-only file system"):
            s.put_fence_record("n2", {"ok": True})
        with pytest.raises(StoreError, match=r"hactl: .*Read-only file system"):
            s.put_document("hactl", "web run\n", None)
    finally:
        subprocess.run(["umount", str(tmp_path)], check=True)


def test_a_status_larger_than_one_read_is_read_whole(tmp_path: Path) -> None:
    """Statuses, claims and fence records are read with plain ``os.read`` calls (issue 19: ``open()``'s text
    layers cost an idle daemon a fifth of its CPU): a status of 500 entries is ~80 kB, more than one read."""
    writer = SharedDirStore(validate_config({"node": "n2", "sharedfs": {"path": str(tmp_path)}}))
    writer.open()
    doc = {
        "node": "n2",
        "seq": 7,
        "groups": {f"g{i}": {"level": "run", "state": "DONE", "pad": "x" * 90} for i in range(2000)},
    }
    writer.publish("n2", doc)
    assert (tmp_path / "nodes" / "n2" / "status.json").stat().st_size > 3 * 65536
    assert store(tmp_path).statuses()["n2"] == doc


def test_garbage_claims_and_fence_records_read_as_unknown_not_raised(tmp_path: Path) -> None:
    s = store(tmp_path)
    (tmp_path / "claims" / "web.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "claims" / "db.json").write_text("[1]")
    (tmp_path / "fence" / "n3.json").write_bytes(b"\x00")
    assert s.claims() == {"web": {"node": "?", "incarnation": "?"}, "db": {"node": "?", "incarnation": "?"}}
    assert s.fence_records() == {}


def test_publish_makes_the_node_directory_again_when_it_was_removed(tmp_path: Path) -> None:
    """The node's directory is made by the first write only (not checked every heartbeat); one removed by hand
    is made again, not turned into a store failure that would isolate the node."""
    s = store(tmp_path)
    s.publish("n1", {"node": "n1", "seq": 1})
    subprocess.run(["rm", "-rf", str(tmp_path / "nodes" / "n1")], check=True)
    s.publish("n1", {"node": "n1", "seq": 2})
    assert s.statuses()["n1"]["seq"] == 2


def test_a_document_that_is_not_utf8_is_listed_with_the_digest_of_its_bytes(tmp_path: Path) -> None:
    """A cltab carried over from the original may hold Latin-1 bytes (a comment, a command's argument). The store
    read it with ``surrogateescape`` but hashed it as UTF-8, which raised UnicodeEncodeError: the daemons logged
    "refused invalid cltab: UnicodeEncodeError: ... surrogates not allowed" instead of the line and byte at fault
    (``tests/core/test_latin1_cltab.py``). Listing it must not fail; its version is the digest of its bytes."""
    raw = "# caf\xe9 du coin\nweb:ip:run:respawn:sleep 100\n".encode("latin-1")
    (tmp_path / "cltab").write_bytes(raw)
    (doc,) = store(tmp_path).documents("cltab")
    assert doc.version == hashlib.sha256(raw).hexdigest()[:16]
    assert doc.text.encode("utf-8", "surrogateescape") == raw
