"""The write probe runs in a child process and gives up at its deadline, as with a hung NFS server."""

from __future__ import annotations

import os
from pathlib import Path

from omha_resource_mount.probe import probe_name, write_probe


def test_probe_writes_and_removes_its_file(tmp_path: Path) -> None:
    assert write_probe(str(tmp_path), timeout=10) is None
    assert list(tmp_path.iterdir()) == []


def test_probe_reports_a_directory_it_cannot_write(tmp_path: Path) -> None:
    failed = write_probe(str(tmp_path / "gone"), timeout=10)
    assert failed is not None and "No such file or directory" in failed


def test_probe_gives_up_on_a_write_that_blocks(tmp_path: Path) -> None:
    # opening a FIFO for writing blocks until a reader comes, as every call blocks on a dead NFS server
    os.mkfifo(tmp_path / probe_name())
    failed = write_probe(str(tmp_path), timeout=0.5)
    assert failed is not None and "timed out after 0.5s" in failed
