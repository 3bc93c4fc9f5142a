"""Where the daemon logs (omha_core/logsetup.py): journald prefixes, a rotated log file, syslog.

Each case runs ``setup_logging`` in a fresh Python process, as the daemon does, with the real file descriptors
(the journal's stream is recognised by the device and inode of stderr, as systemd passes them).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

SCRIPT = """
import json, logging, os, sys
from omha_core.config import validate_config
from omha_core.logsetup import setup_logging
config = validate_config(json.loads(sys.argv[1]))
setup_logging(config, "n1")
log = logging.getLogger("omha.daemon")
log.warning("first %s", "line")
log.error("refused invalid cltab:\\n  cltab:3: bad mode")
if os.environ.get("ROTATE"):
    os.rename(os.environ["ROTATE"], os.environ["ROTATE"] + ".1")  # what logrotate does
log.critical("quorum LOST")
logging.getLogger("omha.init").debug("not at info level")
"""

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def run(config: dict[str, Any], stderr_path: Path, env: dict[str, str] | None = None) -> str:
    with open(stderr_path, "wb") as err:
        subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(config)],
            stderr=err,
            env={**os.environ, **(env or {})},
            check=True,
            timeout=60,
        )
    return stderr_path.read_text()


def test_journal_stream_lines_carry_priority_prefixes_and_no_timestamp(tmp_path: Path) -> None:
    out = tmp_path / "stderr"
    out.touch()
    st = os.stat(out)
    text = run({}, out, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    lines = text.splitlines()
    assert lines == [
        "<4>n1 omha.daemon WARNING first line",
        "<3>n1 omha.daemon ERROR refused invalid cltab:",
        "<3>  cltab:3: bad mode",  # a continuation line keeps the priority: journald makes it an entry too
        "<2>n1 omha.daemon CRITICAL quorum LOST",
    ]
    assert not STAMP.search(text)


def test_journal_stream_of_another_file_is_ignored(tmp_path: Path) -> None:
    """``JOURNAL_STREAM`` is inherited by children whose stderr goes elsewhere: only a match counts."""
    other = tmp_path / "other"
    other.touch()
    st = os.stat(other)
    text = run({}, tmp_path / "stderr", {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert not text.startswith("<")
    assert STAMP.match(text) and " n1 omha.daemon WARNING first line" in text


def test_log_file_is_reopened_after_rotation(tmp_path: Path) -> None:
    log = tmp_path / "omha.log"
    run({"daemon": {"log": str(log)}}, tmp_path / "stderr", {"ROTATE": str(log)})
    rotated = (tmp_path / "omha.log.1").read_text()
    assert "first line" in rotated and "quorum LOST" not in rotated
    fresh = log.read_text()
    assert "CRITICAL quorum LOST" in fresh and "first line" not in fresh


def test_syslog_with_configured_facility(tmp_path: Path) -> None:
    path = f"/tmp/omha-syslog-{uuid.uuid4().hex[:8]}.sock"  # AF_UNIX paths are short: not under tmp_path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        try:
            run({"daemon": {"log": "syslog", "log_facility": "local3", "syslog_socket": path}}, tmp_path / "err")
            got = [sock.recv(4096).decode() for _ in range(3)]
        finally:
            os.unlink(path)
    local3 = 19 * 8
    assert re.fullmatch(rf"<{local3 + 4}>omha\[\d+\]: n1 omha.daemon WARNING first line\x00", got[0])
    assert got[1].startswith(f"<{local3 + 3}>") and "cltab:3: bad mode" in got[1]
    assert re.fullmatch(rf"<{local3 + 2}>omha\[\d+\]: n1 omha.daemon CRITICAL quorum LOST\x00", got[2])


def test_syslog_facility_defaults_to_daemon_and_bad_one_is_refused(tmp_path: Path) -> None:
    from omha_core.config import validate_config
    from omha_core.errors import ConfigError

    assert validate_config({"daemon": {"log": "syslog"}}).section("daemon")["log_facility"] == "daemon"
    try:
        validate_config({"daemon": {"log": "syslog", "log_facility": "daemons"}})
    except ConfigError as exc:
        assert "log_facility" in str(exc) and "'daemon'" in str(exc)
    else:
        raise AssertionError("an unknown facility was accepted")


def test_missing_syslog_socket_falls_back_to_stderr(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such.sock")
    text = run({"daemon": {"log": "syslog", "syslog_socket": missing}}, tmp_path / "stderr")
    assert f"cannot log to syslog through {missing}" in text
    assert "n1 omha.daemon CRITICAL quorum LOST" in text and "Traceback" not in text
