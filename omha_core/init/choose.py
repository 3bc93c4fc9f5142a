"""Choosing an init's cells (:mod:`omha_core.init.cells`): cgroups where this machine allows them, else
environment markers.

Apart from :mod:`omha_core.init.cells` because it needs both kinds, and each kind builds on the base classes
there: in one module they would import each other.
"""

from __future__ import annotations

import logging

from omha_core.init.cells import Cells
from omha_core.init.cgroups import CgroupCells, cgroup2_parent
from omha_core.init.markers import MarkedCells


def open_cells(setting: str, logger: logging.Logger, scope: str | None = None) -> Cells:
    """The cells an init uses: cgroups when ``setting`` is ``auto`` and this machine allows them, else markers.
    ``scope`` (:func:`omha_core.init.owners.scope_of`) goes into every name they make, and their start-up sweep
    only kills what dead inits of the same scope left."""
    if setting == "off":
        logger.info('cgroups are off ([init] cgroup = "off"): children are tracked by environment marker')
        cells: Cells = MarkedCells(scope)
        cells.sweep(logger)
        return cells
    parent, why = cgroup2_parent()
    if parent is not None:
        try:
            cells = CgroupCells(parent, scope)
        except OSError as exc:
            why = f"cannot create a cgroup in {parent}: {exc.strerror or exc}"
        else:
            logger.debug("children are held in the cgroup %s", cells.root)
            cells.sweep(logger)
            return cells
    logger.warning(
        "cgroup v2 unavailable (%s): children are tracked by environment marker and /proc instead; a descendant "
        "that leaves the process tree and clears its environment escapes a stop",
        why,
    )
    cells = MarkedCells(scope)
    cells.sweep(logger)
    return cells
