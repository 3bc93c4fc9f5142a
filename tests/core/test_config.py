"""omha.toml validation: defaults, every problem named by key, plugin sections, fence devices, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from omha_core.config import load_config, read_secret, redact, validate_config
from omha_core.errors import ConfigError

MINIMAL = """
node = "n1"
[cluster]
membership = "sharedfs"
store = "sharedfs"
[sharedfs]
path = "/some/dir"
[timing]
heartbeat = 1
dead_after = 5
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "omha.toml"
    path.write_text(text)
    return str(path)


def test_minimal_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.node == "n1"
    assert cfg.section("sharedfs")["path"] == "/some/dir"
    assert cfg.timing["heartbeat"] == 1.0 and cfg.timing["dead_after"] == 5.0
    assert cfg.section("quorum")["policy"] == "majority"
    assert cfg.section("init")["stop_grace"] == [0.0, 5.0, 10.0]
    assert cfg.state_dir == "/var/lib/omha/n1"


def test_env_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMHA_CONFIG", write(tmp_path, MINIMAL))
    assert load_config().node == "n1"


def test_every_problem_names_its_key(tmp_path: Path) -> None:
    bad = MINIMAL.replace("dead_after = 5", "dead_after = -1\nbogus = 2").replace(
        'store = "sharedfs"', 'store = "sharedfs"\nmembrship = "x"'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, bad))
    lines = str(info.value).splitlines()
    path = str(tmp_path / "omha.toml")
    assert f"{path}: [timing] dead_after: expected a positive number of seconds, got -1" in lines
    assert any("[timing] bogus: unknown key" in line for line in lines)
    assert any("[cluster] membrship: unknown key" in line for line in lines)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"omha.toml: not valid TOML: .*line 2"):
        load_config(write(tmp_path, 'node = "n1"\n[timing\n'))


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config("/nonexistent/omha.toml")


def test_fence_device_kind_must_exist() -> None:
    raw = {"fencing": {"devices": [{"name": "pdu1", "kind": "nope", "nodes": {"n1": "1"}}]}}
    with pytest.raises(ConfigError, match=r"\[fencing.devices\] pdu1: kind 'nope' is not installed"):
        validate_config(raw)


def test_secrets_are_redacted_and_read_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = {"password": "hunter2", "community": "s3cret", "host": "pdu", "password_file": "/x"}
    assert redact({"dev": [opts]}) == {
        "dev": [{"password": "***", "community": "***", "host": "pdu", "password_file": "/x"}]
    }
    secret = tmp_path / "pw"
    secret.write_text("fromfile\n")
    assert read_secret({"password_file": str(secret)}, "password") == "fromfile"
    monkeypatch.setenv("PDU_PW", "fromenv")
    assert read_secret({"password_env": "PDU_PW"}, "password") == "fromenv"
    assert read_secret({}, "community", "private") == "private"
    with pytest.raises(ConfigError, match="environment variable NOPE_X is not set"):
        read_secret({"password_env": "NOPE_X"}, "password")


def test_plugin_sections_are_validated_by_the_plugin_schema() -> None:
    import voluptuous as vol

    from omha_core import hookimpl
    from omha_core.plugins import get_plugin_manager

    class Site:
        @hookimpl
        def omha_config_schema(self) -> dict[str, object]:
            return {"site": {vol.Required("pager"): str, vol.Optional("retries", default=3): int}}

    pm = get_plugin_manager(extra=[Site()])
    assert validate_config({"site": {"pager": "ops"}}, pm=pm).section("site") == {"pager": "ops", "retries": 3}
    with pytest.raises(ConfigError, match=r"omha.toml: \[site\] retries: expected int"):
        validate_config({"site": {"pager": "ops", "retries": "x"}}, pm=pm)
    with pytest.raises(ConfigError, match=r"omha.toml: site: unknown key"):
        validate_config({"site": {"pager": "ops"}})  # without the plugin the section is unknown


def test_unknown_backends_and_agent_sections_are_named() -> None:
    raw = {
        "cluster": {"store": "etcdd", "membership": "sharedfs"},
        "sharedfs": {"path": "/x"},
        "agents": {"nosuch": {"a": 1}, "file": {"content": "x"}},
    }
    with pytest.raises(ConfigError) as info:
        validate_config(raw, "site.toml")
    lines = str(info.value).splitlines()
    assert any(line.startswith("site.toml: [cluster] store: 'etcdd' is not installed (installed: ") for line in lines)
    assert any(line.startswith("site.toml: [agents.nosuch]: no resource agent @nosuch is installed") for line in lines)
    assert "site.toml: [agents.file] content: unknown option (known: )" in lines
    assert len(lines) == 3


def test_one_run_reports_schema_and_device_problems_together() -> None:
    raw = {
        "timing": {"heartbeat": "fast"},
        "fencing": {"devices": [{"name": "pdu1", "kind": "nope", "nodes": {"n1": "1"}}]},
        "agents": {"ghost": {}},
    }
    with pytest.raises(ConfigError) as info:
        validate_config(raw, "site.toml")
    text = str(info.value)
    assert "[timing] heartbeat: expected a positive number of seconds" in text
    assert "[fencing.devices] pdu1: kind 'nope' is not installed" in text
    assert "[agents.ghost]: no resource agent @ghost" in text
