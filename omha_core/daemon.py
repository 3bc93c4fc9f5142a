"""Compatibility: the node daemon now lives in the :mod:`omha_core.node` package (one module per collaborator).

Kept for callers outside this repository that import ``Daemon``, ``open_backends``, ``run_daemon`` or
``sd_notify`` from here.
"""

from omha_core.node import Daemon, open_backends, run_daemon
from omha_core.systemd import sd_notify

__all__ = ["Daemon", "open_backends", "run_daemon", "sd_notify"]
