"""``--json`` output of the commands that need no running daemon (check, load, show, tell, fence, status --check),
each checked against its JSON Schema in ``docs/schemas/``; and the schemas themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omha_core.localcluster import LocalCluster, fence_device
from tests.core.json_schemas import SCHEMAS, schema_for, validated


def test_every_published_schema_is_a_valid_json_schema_named_for_its_file() -> None:
    files = sorted(SCHEMAS.glob("omha.*.json"))
    assert len(files) >= 12
    for path in files:
        base, version, _ = path.name.rsplit(".", 2)
        name = f"{base}/{version}"
        schema = schema_for(name)
        assert schema["$id"] == name and schema["properties"]["schema"] == {"const": name}


def cluster(tmp_path: Path) -> LocalCluster:
    return LocalCluster(tmp_path, nodes=2, devices=[fence_device(tmp_path, ["n1", "n2"])])


def test_check_json(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    (tmp_path / "good").write_text("web:srv:run:respawn:sleep 100\n")
    (tmp_path / "bad").write_text("web:srv:run:respawn:sleep 100\nbroken line\n")
    (tmp_path / "hactl").write_text("web run\nghost run\n")
    out = c.omha("n1", "check", "--cltab", str(tmp_path / "good"), "--hactl", str(tmp_path / "hactl"), "--json")
    doc = validated(out.stdout, "omha.check/1")
    assert doc["ok"] and doc["errors"] == [] and str(tmp_path / "good") in doc["checked"]
    assert any("ghost" in w for w in doc["warnings"])
    out = c.omha("n1", "check", "--cltab", str(tmp_path / "bad"), "--json", check=False)
    assert out.returncode == 1
    doc = validated(out.stdout, "omha.check/1")
    assert not doc["ok"] and doc["errors"][0].startswith(f"{tmp_path / 'bad'}:2:")


def test_load_show_tell_json(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    (tmp_path / "cltab").write_text("web:srv:run:respawn:sleep 100\n")
    (tmp_path / "bad").write_text("nonsense\n")
    doc = validated(c.omha("n1", "load", "--cltab", str(tmp_path / "cltab"), "--json").stdout, "omha.load/1")
    assert doc["ok"] and set(doc["published"]) == {"cltab"}
    out = c.omha("n1", "load", "--cltab", str(tmp_path / "bad"), "--json", check=False)
    assert out.returncode == 1
    doc = validated(out.stdout, "omha.load/1")
    assert not doc["ok"] and doc["published"] == {} and doc["errors"][0].startswith(f"{tmp_path / 'bad'}:1:")
    doc = validated(c.omha("n1", "show", "cltab", "--json").stdout, "omha.show/1")
    assert doc["text"] == "web:srv:run:respawn:sleep 100\n" and not doc["adopted"] and doc["observer"] is None
    doc = validated(c.omha("n1", "tell", "web", "run", "--json").stdout, "omha.tell/1")
    assert doc["group"] == "web" and doc["level"] == "run" and doc["wait"] is None
    assert (c.shared / "hactl").read_text() == "web run\n"


def test_fence_json(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    doc = validated(c.omha("n1", "fence", "n2", "--action", "status", "--json").stdout, "omha.fence/1")
    assert doc["ok"] and doc["devices"][0]["state"] == "off" and doc["done"] is None
    doc = validated(c.omha("n1", "fence", "n2", "--action", "off", "--json").stdout, "omha.fence/1")
    assert doc["ok"] and doc["done"]["device"] == "localkill" and doc["done"]["action"] == "off"
    out = c.omha("n1", "fence", "n9", "--json", check=False)
    assert out.returncode == 1
    assert "no fence device covers node 'n9'" in validated(out.stdout, "omha.error/1")["error"]


def test_operator_commands_refuse_unknown_nodes_as_json(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    for args in (("move", "web", "n7"), ("standby", "n7"), ("cleanup", "web", "n7")):
        out = c.omha("n1", *args, "--json", check=False)
        assert out.returncode == 1, out
        assert "no node 'n7' has ever published a status" in validated(out.stdout, "omha.error/1")["error"]
    assert not (c.shared / "operator").exists()


def test_status_check_without_a_daemon_is_critical_and_without_config_unknown(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    out = c.omha("n1", "status", "--check", check=False)
    assert out.returncode == 2 and out.stdout.startswith("OMHA CRITICAL - ") and len(out.stdout.splitlines()) == 1
    doc = validated(c.omha("n1", "status", "--check", "--json", check=False).stdout, "omha.status-check/1")
    assert doc["code"] == 2 and doc["state"] == "CRITICAL"
    (tmp_path / "broken.toml").write_text("[cluster\n")
    out = c.omha("n1", "status", "-c", str(tmp_path / "broken.toml"), "--check", check=False)
    assert out.returncode == 3 and out.stdout.startswith("OMHA UNKNOWN - "), out


def test_operator_document_written_by_the_commands_matches_its_schema(tmp_path: Path) -> None:
    from omha_core.builtin.sharedfs import SharedDirStore
    from omha_core.config import validate_config
    from omha_core.operator import read_operator, update_operator

    (tmp_path / "s").mkdir()
    store = SharedDirStore(validate_config({"sharedfs": {"path": str(tmp_path / "s")}}))
    store.open()
    assert read_operator(store).version is None

    def change(doc: dict[str, object]) -> None:
        doc["prefer"] = {"web": "n2"}  # type: ignore[assignment]
        doc["standby"] = ["n3"]

    state = update_operator(store, change)
    assert state.prefer == {"web": "n2"} and state.standby == {"n3"} and state.version
    validated((tmp_path / "s" / "operator").read_text(), "omha.operator/1")
    assert read_operator(store) == state
    # an unreadable document is reported, never half-applied
    (tmp_path / "s" / "operator").write_text(json.dumps({"standby": "n3"}))
    assert read_operator(store).problem is not None


def test_operator_document_in_the_shared_directory_round_trips_between_nodes(tmp_path: Path) -> None:
    from omha_testing.operator_contract import check_operator_document

    from omha_core.builtin.sharedfs import SharedDirStore
    from omha_core.config import validate_config

    (tmp_path / "s").mkdir()
    stores = []
    for node in ("n1", "n2"):
        s = SharedDirStore(validate_config({"node": node, "sharedfs": {"path": str(tmp_path / "s")}}))
        s.open()
        stores.append(s)
    check_operator_document(*stores)


def test_a_store_that_refuses_the_operator_document_keeps_the_cluster_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A third-party store written before the operator document: it asserts the name is cltab or hactl."""
    import logging

    from omha_core.backends import DOCUMENTS, Versioned
    from omha_core.builtin.sharedfs import SharedDirStore
    from omha_core.config import validate_config
    from omha_core.errors import OmhaError
    from omha_core.operator import OperatorFollower, update_operator
    from omha_core.report import cluster_report

    class OldStore(SharedDirStore):
        def documents(self, name: str) -> list[Versioned]:
            assert name in DOCUMENTS
            return super().documents(name)

        def put_document(self, name: str, text: str, expect_version: str | None) -> str:
            assert name in DOCUMENTS
            return super().put_document(name, text, expect_version)

    (tmp_path / "s").mkdir()
    store = OldStore(validate_config({"sharedfs": {"path": str(tmp_path / "s")}}))
    store.open()
    follower = OperatorFollower("n1", logging.getLogger("omha.test"))
    with caplog.at_level(logging.WARNING, "omha.test"):
        for _ in range(3):
            state = follower.read(store)
    assert state.prefer == {} and state.standby == frozenset() and follower.cleanups_due() == []
    assert len([r for r in caplog.records if "does not keep the operator document" in r.message]) == 1
    with pytest.raises(OmhaError, match="OldStore does not keep the operator document"):
        update_operator(store, lambda doc: None)
    assert "does not keep the operator document" in cluster_report(store)["operator"]["problem"]
