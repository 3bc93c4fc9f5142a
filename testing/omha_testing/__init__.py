"""omha's shared test helpers: the skip rules every real-component test uses, and the emulators and multi-node
harnesses that the core's tests, each plugin's tests (``plugins/<name>/tests``) and ``bench/`` share.

Its own distribution (``testing/``, ``pip install ./testing``) so that a plugin's tests run in a virtualenv that
holds only the core, this package and that one plugin (``scripts/plugin-test``), never importing the core's
``tests/``. Its pytest plugin (:mod:`omha_testing.plugin`, entry point ``pytest11``) registers the markers, the
``omha_env`` fixture and the CI rule wherever it is installed.

Modules that drive one plugin (:mod:`omha_testing.mosix`, :mod:`omha_testing.etcd`'s ``EtcdLocalCluster``, the
``@mount`` helpers of :mod:`omha_testing.disks`) import that plugin only when used, so that every module imports
in any plugin's virtualenv.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_root() -> None:
    """Skip the calling test unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, mounts, loop devices)")


def require_commands(*names: str) -> None:
    """Skip the calling test unless every command in ``names`` is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (installed by 'make test' as root)")
