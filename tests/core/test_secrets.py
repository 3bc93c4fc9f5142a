"""omha_core.secrets: every way a credential is kept out of what omha shows, in one module, and the old
import paths (omha_core.config, omha_core.fencing, omha_core.config_validation) still giving the same
functions."""

from __future__ import annotations

from pathlib import Path

import pytest

from omha_core import config, config_validation, fencing, secrets
from omha_core.errors import ConfigError


def test_which_option_names_are_secret() -> None:
    assert secrets.is_secret("password") and secrets.is_secret("auth_Password") and secrets.is_secret("token")
    assert not secrets.is_secret("password_file") and not secrets.is_secret("host")


def test_redact_replaces_secret_options_at_any_depth() -> None:
    doc = {"http": {"token": "t0ken-x", "listen": "a:1"}, "dev": [{"community": "c", "password_file": "/p"}]}
    assert secrets.redact(doc) == {
        "http": {"token": "***", "listen": "a:1"},
        "dev": [{"community": "***", "password_file": "/p"}],
    }


def test_read_secret_from_the_value_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("OMHA_TEST_PW", "from-env")
    assert secrets.read_secret({"password": "plain"}, "password") == "plain"
    assert secrets.read_secret({"password_file": str(tmp_path / "pw")}, "password") == "from-file"
    assert secrets.read_secret({"password_env": "OMHA_TEST_PW"}, "password") == "from-env"
    assert secrets.read_secret({}, "password", "dflt") == "dflt"
    with pytest.raises(ConfigError, match="password_env: environment variable OMHA_NOPE_X is not set"):
        secrets.read_secret({"password_env": "OMHA_NOPE_X"}, "password")


def test_command_lines_and_messages_are_scrubbed() -> None:
    assert secrets.redact_command("agent host=h password=s3cr3t token='a b' x=1") == (
        "agent host=h password=*** token=*** x=1"
    )
    assert secrets.scrub("login s3cr3t failed for s3cr3t", ["s3cr3t"]) == "login *** failed for ***"
    assert secrets.hide_value("expected a string, got 'hunter2'") == (
        "expected a string (the value is not shown: it is a secret)"
    )
    assert secrets.secret_path(["fencing", "devices", "0", "password"])


def test_the_old_import_paths_give_the_same_functions() -> None:
    assert config.is_secret is secrets.is_secret and config.redact is secrets.redact
    assert config.read_secret is secrets.read_secret and config.SECRET_SUFFIXES is secrets.SECRET_SUFFIXES
    assert fencing.scrub is secrets.scrub and fencing.secret_values is secrets.secret_values
    assert config_validation.hide_value is secrets.hide_value
