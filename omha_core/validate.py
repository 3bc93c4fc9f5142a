"""Whole-document checks that need the plugins: a cltab's ``@agent`` commands, hactl against cltab."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from omha_core.cltab import Cltab, parse_cltab
from omha_core.errors import OmhaError, ParseError, Problem

if TYPE_CHECKING:
    import pluggy

    from omha_core.config import Config


def check_agents(
    cltab: Cltab, pm: pluggy.PluginManager, config: Config | None = None, local: list[Problem] | None = None
) -> list[Problem]:
    """Problems with the ``@name args`` commands of ``cltab``: unknown agents, invalid arguments.

    :param local: when a list (``omha check``), also run each agent's checks that need this machine
        (:meth:`~omha_core.resources.ResourceAgent.validate_local`) and append their warnings to it.
    """
    from omha_core import hooks
    from omha_core.plugins import broken_hint

    agents = hooks.resource_agents(pm)
    problems = []
    for entry in cltab.entries:
        name = entry.agent
        if name is None:
            continue
        if name not in agents:
            known = ", ".join("@" + a for a in sorted(agents)) or "none"
            msg = f"unknown resource agent @{name} (installed: {known}){broken_hint(pm)}"
            problems.append(Problem(cltab.filename, entry.line, msg))
            continue
        options = config.agent_options(name) if config else {}
        try:
            agent = agents[name][0].from_command(entry.agent_args, options)
            agent.validate()
            if local is not None:
                local.extend(Problem(cltab.filename, entry.line, w) for w in agent.validate_local())
        except OmhaError as exc:
            msg = str(exc) if str(exc).startswith(f"@{name}") else f"@{name}: {exc}"
            problems.append(Problem(cltab.filename, entry.line, msg))
        except Exception as exc:  # the agent plugin's bug: the entry is refused, the daemon goes on
            plugin = agents[name][1]
            msg = f"@{name}: plugin {plugin} failed: {type(exc).__name__}: {exc}"
            problems.append(Problem(cltab.filename, entry.line, msg))
    return problems


def load_cltab(
    text: str | bytes, filename: str, pm: pluggy.PluginManager, config: Config | None = None, local: bool = False
) -> Cltab:
    """Parse a cltab and check its agents; raise :class:`ParseError` with every problem.

    :param local: also run the agents' checks that need this machine; their warnings join the cltab's.
    """
    cltab = parse_cltab(text, filename)
    warnings: list[Problem] | None = [] if local else None
    problems = check_agents(cltab, pm, config, warnings)
    if problems:
        raise ParseError(problems)
    if warnings:
        cltab = dataclasses.replace(cltab, warnings=(*cltab.warnings, *warnings))
    return cltab


def check_document(
    name: str,
    text: str | bytes,
    origin: str,
    pm: pluggy.PluginManager,
    config: Config | None = None,
    warnings: list[Problem] | None = None,
    local: bool = False,
) -> Cltab | dict[str, str]:
    """Validate a ``cltab`` (with its agents) or an ``hactl``; return the parsed document or raise
    :class:`ParseError` naming ``origin`` and each line. An hactl's warnings are appended to ``warnings``;
    ``local``: see :func:`load_cltab`."""
    from omha_core.hactl import parse_hactl

    if name == "cltab":
        return load_cltab(text, origin, pm, config, local)
    return parse_hactl(text, origin, warnings)
