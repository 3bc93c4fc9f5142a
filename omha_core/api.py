"""The Python API, after OpenMosix::HA's synopsis::

    from omha_core import HA
    ha = HA("/etc/omha/omha.toml")
    ha.tell("foo", "run")      # run group foo at level "run", somewhere in the cluster
    ha.tell("foo", "runmore")  # move it to "runmore" in place
    ha.status()                # the same dict as `omha status --json`

It goes through the configured store, like the CLI, so it works on any machine with the configuration.
"""

from __future__ import annotations

from typing import Any

from omha_core.config import Config, load_config
from omha_core.control import open_store, tell
from omha_core.plugins import get_plugin_manager


class HA:
    """A handle on an omha cluster."""

    def __init__(self, config: Config | str | None = None) -> None:
        self.pm = get_plugin_manager()
        self.config = config if isinstance(config, Config) else load_config(config, self.pm)
        self.store = open_store(self.config, self.pm)

    def tell(self, group: str, level: str) -> str:
        """Set ``group``'s wanted level cluster-wide (``stop`` stops it everywhere); returns the hactl version."""
        return tell(self.store, group, level)

    def status(self) -> dict[str, Any]:
        """The cluster report (schema in :mod:`omha_core.report`)."""
        from omha_core.report import cluster_report

        return cluster_report(self.store, self.config.cluster_name, float(self.config.timing["dead_after"]))
