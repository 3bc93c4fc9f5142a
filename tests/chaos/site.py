"""The campaign's site plugin: an ``omha`` entry point whose every hook raises while a toggle file says so.

Installed the way pip installs a plugin (a module and a dist-info with an ``[omha]`` entry point) in a directory
put on the daemons' ``PYTHONPATH``. Each daemon runs with ``OMHA_CHAOS_NODE`` set to its node name; the plugin
raises in the hooks listed in ``OMHA_CHAOS_DIR/plugin-raise.NODE`` (``fitness``, ``notify``, ``register``, or
``all``) and behaves (returns nothing) otherwise. A bug in a five-line site plugin must cost at most the
plugin's own effect, never a healthy node.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

PLUGIN = '''
import os
from omha_core import hookimpl


def _raising(kind):
    node = os.environ.get("OMHA_CHAOS_NODE")
    if not node:
        return
    path = os.path.join(os.environ["OMHA_CHAOS_DIR"], f"plugin-raise.{node}")
    try:
        with open(path) as fh:
            kinds = fh.read().split()
    except OSError:
        return
    if kind in kinds or "all" in kinds:
        raise RuntimeError(f"chaos site plugin: {kind} hook failed on purpose")


@hookimpl
def omha_config_schema():
    _raising("register")


@hookimpl
def omha_store_backends():
    _raising("register")


@hookimpl
def omha_membership_backends():
    _raising("register")


@hookimpl
def omha_resource_agents():
    _raising("register")


@hookimpl
def omha_fence_devices():
    _raising("register")


@hookimpl
def omha_node_fitness(group, node, config):
    _raising("fitness")


@hookimpl
def omha_node_lost(node, observer, groups):
    _raising("notify")


@hookimpl
def omha_node_fenced(node, device, action, result):
    _raising("notify")


@hookimpl
def omha_fence_failed(node, errors):
    _raising("notify")


@hookimpl
def omha_group_moved(group, from_node, to_node, level):
    _raising("notify")
'''
#: the hook families the ``plugin_raise`` fault picks from
FAMILIES = ["fitness", "notify", "register", "all"]


def install(site: Path) -> Path:
    """Write the plugin into ``site`` (a directory for ``PYTHONPATH``); returns ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "omhachaos_site.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "omhachaos_site-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: omhachaos-site\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[omha]\nchaos = omhachaos_site\n")
    return site
