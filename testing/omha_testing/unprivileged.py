"""A world-readable copy of what ``python -m omha_core.agent vip`` imports, for running the agent as ``nobody``.

The tests that run the agent unprivileged (``setpriv --reuid=65534``) must work wherever the clone lives: in a
``mktemp -d`` directory or under ``/root``, ``nobody`` can neither run the virtualenv's interpreter nor import
the editable installs, which point into the clone. So the packages the agent imports are copied, with the vip
plugin's entry point, into a fresh directory under ``/tmp`` that everybody can read, and the agent runs on the
base interpreter with that directory as its ``PYTHONPATH``: the agent's code is the clone's, only its location
differs, and it still runs without any capability (what the tests are about).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

#: every non-standard-library package the vip agent imports (its plugin, the core and their dependencies)
PACKAGES = ("omha_core", "omha_resource_vip", "pluggy", "voluptuous")


def base_python() -> str:
    """The interpreter the virtualenv was made from (the virtualenv's own may sit in an unreadable clone)."""
    exe = os.path.realpath(sys.executable)  # a virtualenv's python is usually a symlink to the base one
    if sys.prefix != sys.base_prefix and exe.startswith(os.path.realpath(sys.prefix) + os.sep):
        exe = os.path.join(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")
    return exe


def make_site() -> Path:
    """Create the world-readable copy; return the directory to put on ``PYTHONPATH``. Remove it with
    :func:`shutil.rmtree` on its parent when done."""
    root = Path(tempfile.mkdtemp(prefix="omha-nobody-", dir="/tmp"))
    site = root / "site"
    site.mkdir()
    for name in PACKAGES:
        module = importlib.import_module(name)
        assert module.__file__ is not None
        shutil.copytree(Path(module.__file__).parent, site / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = importlib.metadata.distribution("omha-resource-vip")
    info = site / f"omha_resource_vip-{dist.version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: omha-resource-vip\nVersion: {dist.version}\n")
    (info / "entry_points.txt").write_text(dist.read_text("entry_points.txt") or "")
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (0o111 if path.is_dir() else 0))
    return site
