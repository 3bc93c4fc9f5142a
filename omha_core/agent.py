"""Run one resource-agent action in its own process: ``python -m omha_core.agent NAME ACTION ARGS``.

The local init runs every ``@name args`` cltab entry through this module, so agents are supervised, timed
out and killed exactly like shell commands. Actions:

- ``acquire`` / ``release`` / ``check``: do it once; exit 0 on success, 1 with the reason on stderr.
- ``respawn``: acquire, then monitor every ``monitor_interval`` seconds; when the resource is found gone,
  exit 3 so the init restarts the entry (re-acquiring) under its rapid-respawn throttle. SIGTERM, SIGINT or
  SIGHUP (the daemon stopping the entry, or dying: the parent-death signal) release the resource, then exit 0.

Exit 2 means the agent is unknown or its arguments are invalid. The agent's options come from the
configuration named by ``$OMHA_CONFIG`` (``[agents.NAME]``), when set.

Start-up cost. Each action is a new Python process, on the failover's critical path. Loading every plugin to
find one agent class (and validating the whole configuration with every plugin's schema) costs several times
the agent's own work, so the daemon, which has loaded and validated all that already, tells its children where
each agent class lives (``$OMHA_AGENT_CLASSES``: ``name=module:Class`` words); the child then imports that one
module and reads its ``[agents.NAME]`` table straight from the file the daemon validated. Without that variable
(an agent run by hand) the plugins are loaded as before.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType
from typing import Any

from omha_core.errors import ConfigError, OmhaError, ResourceError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_LOST = 0, 1, 2, 3


class _Stop(Exception):
    pass


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


#: where the daemon lists the installed agent classes for its children (see the module docstring)
CLASSES_ENV = "OMHA_AGENT_CLASSES"


def classes_env(pm: Any) -> str:
    """The value of :data:`CLASSES_ENV` for the agents installed in plugin manager ``pm``."""
    from omha_core.hooks import resource_agents

    words = []
    for name, (cls, _plugin) in sorted(resource_agents(pm).items()):
        if "<" not in cls.__qualname__ and " " not in f"{name}{cls.__module__}":  # importable by name only
            words.append(f"{name}={cls.__module__}:{cls.__qualname__}")
    return " ".join(words)


def _class_from_env(name: str) -> type | None:
    """Agent ``name``'s class as the daemon named it in :data:`CLASSES_ENV`; None when it did not."""
    from importlib import import_module

    from omha_core.resources import ResourceAgent

    for word in os.environ.get(CLASSES_ENV, "").split():
        key, _, where = word.partition("=")
        if key != name:
            continue
        module, _, qualname = where.partition(":")
        obj: Any = import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, ResourceAgent):
            return obj
    return None


def _raw_options(path: str, name: str) -> dict[str, Any]:
    """``[agents.NAME]`` of the configuration file at ``path``, read without validating the rest (the daemon
    that started this agent validated it)."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the agent options: {exc}") from None
    agents = raw.get("agents", {})
    options = agents.get(name, {}) if isinstance(agents, dict) else {}
    return dict(options) if isinstance(options, dict) else {}


def build_agent(name: str, argstring: str) -> object:
    """Instantiate agent ``name`` with its configured options: the class the daemon named, else the one found
    in the installed plugins."""
    cls: Any = _class_from_env(name)
    if cls is not None:
        path = os.environ.get("OMHA_CONFIG")
        agent = cls.from_command(argstring, _raw_options(path, name) if path else {})
        agent.validate()
        return agent
    from omha_core.hooks import resource_agent
    from omha_core.plugins import get_plugin_manager

    pm = get_plugin_manager()
    cls = resource_agent(pm, name)
    options = {}
    if os.environ.get("OMHA_CONFIG"):
        from omha_core.config import load_config

        options = dict(load_config(os.environ["OMHA_CONFIG"], pm).agent_options(name))
    agent = cls.from_command(argstring, options)
    agent.validate()
    return agent


def run(name: str, action: str, argstring: str) -> int:
    """Perform ``action`` with agent ``name``; return the process exit status."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        agent = build_agent(name, argstring)
    except _Stop:
        return EXIT_OK
    except OmhaError as exc:
        print(f"@{name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if action in ("acquire", "release", "check"):
            getattr(agent, action)()
            return EXIT_OK
        if action != "respawn":
            print(f"@{name}: unknown action {action!r}", file=sys.stderr)
            return EXIT_USAGE
        agent.acquire()  # type: ignore[attr-defined]
        interval = float(getattr(agent, "monitor_interval", 2.0))
        # the log's record that the resource is in place (and the point after which a loss exits 3, not 1)
        print(f"@{name} {argstring}: acquired; monitoring every {interval:g} s", file=sys.stderr, flush=True)
        while True:
            time.sleep(interval)
            try:
                healthy = agent.monitor()  # type: ignore[attr-defined]
            except (ResourceError, OSError) as exc:  # e.g. the interface vanished mid-check: lost, not failed
                print(f"@{name} {argstring}: monitor failed: {exc}", file=sys.stderr)
                healthy = False
            if not healthy:
                print(f"@{name} {argstring}: resource lost, re-acquiring", file=sys.stderr)
                return EXIT_LOST
    except _Stop:
        if action != "respawn":
            # an acquire or release cut short did not finish: never report it as done
            print(f"@{name} {argstring}: {action} interrupted by a signal", file=sys.stderr)
            return EXIT_FAILED
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        try:
            agent.release()  # type: ignore[attr-defined]
        except (ResourceError, OSError) as exc:
            print(f"@{name} {argstring}: release failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    except (ResourceError, OSError) as exc:
        print(f"@{name} {argstring}: {action} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``NAME ACTION [ARGSTRING]``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: python -m omha_core.agent NAME acquire|release|check|respawn [ARGS]", file=sys.stderr)
        return EXIT_USAGE
    return run(args[0], args[1], " ".join(args[2:]))


if __name__ == "__main__":
    sys.exit(main())
