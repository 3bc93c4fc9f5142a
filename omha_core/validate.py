"""Whole-document checks that need the plugins: a cltab's ``@agent`` commands, hactl against cltab."""

from __future__ import annotations

from typing import TYPE_CHECKING

from omha_core.cltab import Cltab, parse_cltab
from omha_core.errors import OmhaError, ParseError, Problem

if TYPE_CHECKING:
    import pluggy

    from omha_core.config import Config


def check_agents(cltab: Cltab, pm: pluggy.PluginManager, config: Config | None = None) -> list[Problem]:
    """Problems with the ``@name args`` commands of ``cltab``: unknown agents, invalid arguments."""
    from omha_core.plugins import broken_hint, registry

    agents = registry(pm, "omha_resource_agents")
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
            agents[name][0].from_command(entry.agent_args, options).validate()
        except OmhaError as exc:
            msg = str(exc) if str(exc).startswith(f"@{name}") else f"@{name}: {exc}"
            problems.append(Problem(cltab.filename, entry.line, msg))
        except Exception as exc:  # the agent plugin's bug: the entry is refused, the daemon goes on
            plugin = agents[name][1]
            msg = f"@{name}: plugin {plugin} failed: {type(exc).__name__}: {exc}"
            problems.append(Problem(cltab.filename, entry.line, msg))
    return problems


def load_cltab(text: str | bytes, filename: str, pm: pluggy.PluginManager, config: Config | None = None) -> Cltab:
    """Parse a cltab and check its agents; raise :class:`ParseError` with every problem."""
    cltab = parse_cltab(text, filename)
    problems = check_agents(cltab, pm, config)
    if problems:
        raise ParseError(problems)
    return cltab


def check_document(
    name: str, text: str | bytes, origin: str, pm: pluggy.PluginManager, config: Config | None = None
) -> Cltab | dict[str, str]:
    """Validate a ``cltab`` (with its agents) or an ``hactl``; return the parsed document or raise
    :class:`ParseError` naming ``origin`` and each line."""
    from omha_core.hactl import parse_hactl

    if name == "cltab":
        return load_cltab(text, origin, pm, config)
    return parse_hactl(text, origin)
