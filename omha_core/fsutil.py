"""Small filesystem helpers: atomic writes that readers on other nodes never see half-done."""

from __future__ import annotations

import json
import os
from typing import Any


def atomic_write(path: str, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename."""
    directory = os.path.dirname(path) or "."
    import tempfile  # here, not at the top: omha status never writes (CLI start-up, issue 19)

    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON atomically."""
    atomic_write(path, json.dumps(obj, sort_keys=True, indent=1) + "\n")


def create_exclusive(path: str, data: str) -> bool:
    """Create ``path`` holding ``data`` only if it does not exist, atomically (also on NFS: link(2)).

    Returns True when this call created it.
    """
    directory = os.path.dirname(path) or "."
    import tempfile  # here, not at the top: omha status never writes (CLI start-up, issue 19)

    fd, tmp = tempfile.mkstemp(prefix=".tmp.", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)
